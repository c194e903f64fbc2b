"""The domain YAML: validation, unknown keys, environment variables, overrides, taxonomy lookup."""

from __future__ import annotations

import pytest
import yaml

from index.config import ConfigError, apply_overrides, load_config, parse_config
from index.taxonomy import UnknownLabelError
from tests.fixtures.paths import PCB_CONFIG, VEHICLE_CONFIG


def raw(path=VEHICLE_CONFIG):
    return yaml.safe_load(path.read_text())


def test_both_shipped_configs_validate():
    vehicle = load_config(VEHICLE_CONFIG)
    pcb = load_config(PCB_CONFIG)
    assert vehicle.taxonomy.label_keys() == [
        "scratch", "dent", "paint_peeling", "large_scratch", "crack",
        "missing_piece", "missing_accessory", "misaligned_part",
    ]
    assert [label.id for label in vehicle.taxonomy.labels] == [str(i) for i in range(1, 9)]
    assert pcb.dataset.format == "coco" and len(pcb.taxonomy.labels) == 6


@pytest.mark.parametrize(
    "text, key",
    [("1", "scratch"), ("rayones", "scratch"), ("Rayón", "scratch"), ("arañazo", "scratch"),
     ("scratches", "scratch"), ("Large scratch", "large_scratch"), ("Arañazo grande", "large_scratch"),
     ("abolladura", "dent"), ("grieta", "crack"), ("Grietas", "crack"), ("8", "misaligned_part"),
     ("falta tapón", "missing_accessory"), ("missing_piece", "missing_piece")],
)
def test_labels_resolve_by_id_key_name_or_synonym(text, key):
    assert load_config(VEHICLE_CONFIG).taxonomy.resolve(text).key == key


def test_unknown_label_error_lists_valid_labels():
    with pytest.raises(UnknownLabelError, match="valid labels are: scratch, dent"):
        load_config(VEHICLE_CONFIG).taxonomy.resolve("rust")


def test_every_label_has_a_definition_that_names_a_neighbour():
    for label in load_config(VEHICLE_CONFIG).taxonomy.labels:
        assert len(label.definition) > 80 and "Tell it from" in label.definition


def test_unknown_key_is_named():
    data = raw()
    data["regions"]["context_margn"] = 0.3
    with pytest.raises(ConfigError, match=r"unknown key 'regions.context_margn'"):
        parse_config(data, "x.yaml")


def test_bad_value_is_named():
    data = raw()
    data["regions"]["min_side"] = -1
    with pytest.raises(ConfigError, match=r"x.yaml: regions.min_side"):
        parse_config(data, "x.yaml")


def test_duplicate_synonym_across_labels_is_refused():
    data = raw()
    data["taxonomy"]["labels"][1]["synonyms"].append("rayón")
    with pytest.raises(ConfigError, match="used by both"):
        parse_config(data)


def test_environment_variables_fill_strings(monkeypatch):
    monkeypatch.setenv("DAMAGE_DATASET", "/mnt/photos")
    assert str(load_config(VEHICLE_CONFIG).dataset.root) == "/mnt/photos"
    monkeypatch.delenv("DAMAGE_DATASET")
    assert str(load_config(VEHICLE_CONFIG).dataset.root) == "data/vehicle_damage"
    data = raw()
    data["dataset"]["root"] = "${SURELY_NOT_SET_VARIABLE}"
    with pytest.raises(ConfigError, match="SURELY_NOT_SET_VARIABLE is not set"):
        parse_config(data)


def test_overrides_revalidate():
    config = load_config(VEHICLE_CONFIG)
    changed = apply_overrides(config, {"dataset.root": "/tmp/x", "dataset.format": "coco", "regions.crop_size": 224, "index.dir": None})
    assert str(changed.dataset.root) == "/tmp/x" and changed.dataset.format == "coco"
    assert changed.regions.crop_size == 224 and changed.index.dir == config.index.dir
    with pytest.raises(ConfigError):
        apply_overrides(config, {"regions.crop_size": "big"})


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="Cannot read config"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)

"""get_label_definitions: the taxonomy's labels, all or some, by key, name or synonym."""

from __future__ import annotations

from tools import get_label_definitions, run_tool


def test_definitions_all_and_some(make_ctx, tools_config):
    ctx = make_ctx()
    everything = run_tool(ctx, "get_label_definitions", {})
    assert not everything.error
    keys = tools_config.taxonomy.label_keys()
    assert [r["key"] for r in everything.data["labels"]] == keys
    for label in tools_config.taxonomy.labels:
        assert any(line.startswith(f"{label.key} (id {label.id}; {label.name}") for line in everything.text.splitlines())
    scratch = everything.data["labels"][0]
    assert scratch["source_name"] == "Arañazo general" and "large scratch" in scratch["definition"]
    some = run_tool(ctx, "get_label_definitions", {"labels": ["grieta", "scratch", "rayones"]})
    assert [r["key"] for r in some.data["labels"]] == ["crack", "scratch"]
    as_text = get_label_definitions(ctx, labels="dent, large_scratch")
    assert [r["key"] for r in as_text.data["labels"]] == ["dent", "large_scratch"]
    long_name = get_label_definitions(ctx, labels="Falta algo genérico del coche (tapón, marca, letras…)")
    assert [r["key"] for r in long_name.data["labels"]] == ["missing_accessory"]

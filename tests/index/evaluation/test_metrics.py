"""Evaluation metrics on hand-computed cases, and a vehicle-grouped split that never leaks."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from index.config import DatasetConfig, VehicleGrouping
from index.dataset.ingest import assign_vehicle_groups
from index.dataset.records import ImageRecord, Region
from index.dataset.splits import split_by_vehicle
from index.evaluation import metrics

# ---------------------------------------------------------------------------- classification

Y_TRUE = ["a", "a", "a", "b", "b", "c"]
Y_PRED = ["a", "a", "b", "b", "c", "c"]


def test_confusion_matrix_by_eye():
    labels, matrix = metrics.confusion_matrix(Y_TRUE, Y_PRED)
    assert labels == ["a", "b", "c"]
    assert matrix == [
        [2, 1, 0],  # a: two right, one called b
        [0, 1, 1],  # b: one right, one called c
        [0, 0, 1],  # c: right
    ]


def test_confusion_matrix_keeps_given_order_and_never_drops_a_pair():
    labels, matrix = metrics.confusion_matrix(["x", "y"], ["y", "none"], labels=["y", "x"])
    assert labels == ["y", "x", "none"]
    assert matrix == [[0, 0, 1], [1, 0, 0], [0, 0, 0]]
    with pytest.raises(ValueError):
        metrics.confusion_matrix(["a"], [])


def test_per_label_precision_recall_f1_and_macro_f1():
    report = metrics.classification_report(Y_TRUE, Y_PRED)
    a, b, c = (report["per_label"][k] for k in "abc")
    assert (a["precision"], a["recall"], a["support"]) == (1.0, pytest.approx(2 / 3), 3)
    assert a["f1"] == pytest.approx(0.8)  # 2 * 1 * 2/3 / (1 + 2/3)
    assert (b["precision"], b["recall"], b["f1"]) == (0.5, 0.5, 0.5)
    assert (c["precision"], c["recall"], c["f1"]) == (0.5, 1.0, pytest.approx(2 / 3))
    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report["accuracy"] == pytest.approx(4 / 6)


def test_report_over_chosen_labels_counts_outside_predictions_as_misses():
    report = metrics.classification_report(["a", "a", "b"], ["a", "none", "b"], labels=["a", "b"])
    assert set(report["per_label"]) == {"a", "b"}
    assert report["per_label"]["a"]["recall"] == 0.5 and report["per_label"]["a"]["precision"] == 1.0
    assert report["macro_f1"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert metrics.f1_score(0.0, 0.0) == 0.0


def test_weighted_vote():
    assert metrics.weighted_vote([(["a"], 0.9), (["b"], 0.5), (["b"], 0.5)]) == "b"  # 1.0 beats 0.9
    assert metrics.weighted_vote([(["a"], 0.5), (["b"], 0.5)]) == "a"  # tie: first ranked wins
    assert metrics.weighted_vote([([], 0.9), (["a"], 0.3)]) == "none"  # unlabelled neighbours vote
    assert metrics.weighted_vote([(["a", "b"], 0.4), (["b"], 0.1)]) == "b"  # multi-label votes each
    assert metrics.weighted_vote([(["a"], -0.2), (["b"], -0.1)]) == "a"
    assert metrics.weighted_vote([]) == "none"


# ---------------------------------------------------------------------------- ranking

RANKING = [True, False, True, False, False]


def test_precision_and_hit_at_k():
    assert metrics.precision_at_k(RANKING, 1) == 1.0
    assert metrics.precision_at_k(RANKING, 3) == pytest.approx(2 / 3)
    assert metrics.precision_at_k(RANKING, 5) == pytest.approx(2 / 5)
    assert metrics.precision_at_k([True], 5) == pytest.approx(1 / 5)  # missing ranks are misses
    assert metrics.hit_at_k([False, False, True], 2) == 0.0
    assert metrics.hit_at_k([False, False, True], 3) == 1.0
    with pytest.raises(ValueError):
        metrics.precision_at_k(RANKING, 0)


def test_average_precision():
    # relevant at ranks 1 and 3: precisions 1/1 and 2/3
    assert metrics.average_precision(RANKING) == pytest.approx((1 + 2 / 3) / 2)
    # four relevant items exist, two were retrieved
    assert metrics.average_precision(RANKING, n_relevant=4) == pytest.approx((1 + 2 / 3) / 4)
    assert metrics.average_precision([False, False]) == 0.0
    assert metrics.average_precision([False, True], n_relevant=1) == 0.5
    with pytest.raises(ValueError):
        metrics.average_precision(RANKING, n_relevant=1)
    assert metrics.mean_average_precision([RANKING, [False, True]]) == pytest.approx(((1 + 2 / 3) / 2 + 0.5) / 2)
    assert metrics.mean_average_precision([]) == 0.0


def test_box_iou_of_known_boxes():
    assert metrics.box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)  # 1 / (4 + 4 - 1)
    assert metrics.box_iou((0, 0, 2, 2), (0, 0, 2, 2)) == 1.0
    assert metrics.box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0
    assert metrics.box_iou((0, 0, 4, 2), (2, 0, 6, 2)) == pytest.approx(4 / 12)


# ---------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_the_true_difference_and_is_deterministic():
    rng = random.Random(7)
    b = [rng.random() for _ in range(300)]
    a = [x + 0.3 + rng.gauss(0, 0.1) for x in b]  # true paired difference 0.3
    ci = metrics.bootstrap_diff_ci(a, b, seed=1)
    assert ci.low < 0.3 < ci.high and ci.low < ci.estimate < ci.high
    assert ci.low > 0  # clearly better
    assert ci.high - ci.low < 0.05
    assert metrics.bootstrap_diff_ci(a, b, seed=1) == ci
    assert metrics.bootstrap_diff_ci(a, b, seed=2) != ci
    same = metrics.bootstrap_diff_ci(b, b)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0) and not same.significant
    with pytest.raises(ValueError):
        metrics.bootstrap_diff_ci([1.0], [1.0, 2.0])


def test_bootstrap_mean_ci_small_samples():
    none = metrics.bootstrap_mean_ci([])
    assert (none.estimate, none.low, none.high) == (None, None, None)
    one = metrics.bootstrap_mean_ci([0.4])  # one value: an estimate, no interval
    assert (one.estimate, one.low, one.high) == (0.4, None, None)
    ci = metrics.bootstrap_mean_ci([0.0, 1.0] * 50, confidence=0.9)
    assert ci.estimate == 0.5 and 0.35 < ci.low < 0.5 < ci.high < 0.65


def test_bootstrap_resamples_are_shared_by_seed_whatever_their_number():
    few, many = metrics.bootstrap_indices(20, 5, seed=3), metrics.bootstrap_indices(20, 50, seed=3)
    assert few.shape == (5, 20) and (many[:5] == few).all()
    assert metrics.precision_recall_f1(2, 1, 1) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert metrics.precision_recall_f1(0, 0, 0) == (0.0, 0.0, 0.0)
    assert metrics.mean_of_present([None, 1.0, 3.0]) == 2.0 and metrics.mean_of_present([None]) is None
    assert metrics.percentile([1.0, None, 3.0, float("nan")], 50) == 2.0


# ---------------------------------------------------------------------------- split leak check

LABELS = ["scratch", "dent", "crack", "missing_piece"]
WINDOW_S = 900.0


def _records(seed: int, vehicles: int = 40) -> list[ImageRecord]:
    """Photos of vehicles: a few shots minutes apart, prefixes reused by later vehicles."""
    rng = random.Random(seed)
    records = []
    clock = 1_554_000_000_000
    for v in range(vehicles):
        prefix = f"zona1_ko_{rng.randint(1, 6)}"  # prefixes repeat across vehicles
        clock += rng.randint(20, 200) * 60_000  # next vehicle more than 15 minutes later
        for shot in range(rng.randint(1, 6)):
            stamp = clock + shot * rng.randint(10, 120) * 1000
            labels = rng.sample(LABELS, rng.randint(0, 2))
            regions = [Region(k, k, k, "polygon", [(0, 0), (10, 0), (10, 10)], (0, 0, 10, 10), 50.0) for k in labels]
            image_id = f"{prefix}_{stamp}_zona_{shot}_imageDANO_original.jpg"
            records.append(ImageRecord(
                image_id=image_id, image_path=Path(image_id), annotation_path=Path(image_id + ".json"),
                width=100, height=100, exif_transpose=True, embedded=False, mode="RGB", regions=regions,
                attributes={"prefix": prefix, "timestamp": str(stamp), "vehicle": f"v{v}"},
            ))
    rng.shuffle(records)
    return records


@pytest.mark.parametrize("seed", range(6))
def test_vehicle_split_never_leaks(seed):
    records = _records(seed)
    dataset = DatasetConfig(vehicle=VehicleGrouping(key="{prefix}", time_field="timestamp", time_unit="ms",
                                                    window_s=WINDOW_S))
    assign_vehicle_groups(records, dataset)
    for fraction in (0.2, 0.35):
        split = split_by_vehicle(records, test_fraction=fraction, seed=seed)
        assert {r.image_id for r in split.train} | {r.image_id for r in split.test} == {r.image_id for r in records}
        assert not {r.image_id for r in split.train} & {r.image_id for r in split.test}
        assert split.train and split.test
        assert not split.groups("train") & split.groups("test")
        assert split.summary()["shared_groups"] == 0
        # The physical notion: no test photo is a shot of a train photo's vehicle ...
        assert not {r.attributes["vehicle"] for r in split.train} & {r.attributes["vehicle"] for r in split.test}
        # ... nor has the same prefix within the time window of one.
        for test in split.test:
            for train in split.train:
                if test.attributes["prefix"] == train.attributes["prefix"]:
                    gap = abs(int(test.attributes["timestamp"]) - int(train.attributes["timestamp"])) / 1000
                    assert gap > WINDOW_S
        # Deterministic for a seed.
        again = split_by_vehicle(records, test_fraction=fraction, seed=seed)
        assert [r.image_id for r in again.test] == [r.image_id for r in split.test]

"""Honest train/test splits: by vehicle, stratified by label, deterministic.

All shots of one vehicle group (``ImageRecord.vehicle_group``, from the configured prefix
pattern and time window) land on the same side, so a near-duplicate of a test photo is never
in the index it is evaluated against. Groups are assigned greedily, rarest label first, so
each label's share of test images stays close to ``test_fraction``.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass

from index.dataset.records import ImageRecord


@dataclass
class Split:
    """Train and test images; no vehicle group is on both sides."""

    train: list[ImageRecord]
    test: list[ImageRecord]

    def groups(self, side: str) -> set[str]:
        """Vehicle groups on one side ('train' or 'test')."""
        return {r.vehicle_group for r in getattr(self, side)}

    def summary(self) -> dict[str, object]:
        """Counts per side, per label, and the leak check."""
        def labels(records: list[ImageRecord]) -> dict[str, int]:
            return dict(Counter(k for r in records for k in r.label_keys()))

        return {
            "train_images": len(self.train), "test_images": len(self.test),
            "train_groups": len(self.groups("train")), "test_groups": len(self.groups("test")),
            "shared_groups": len(self.groups("train") & self.groups("test")),
            "train_labels": labels(self.train), "test_labels": labels(self.test),
        }


def _order(key: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}|{key}".encode()).hexdigest()


def split_by_vehicle(records: list[ImageRecord], test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Split images into train and test by vehicle group, stratified by label.

    Args:
        records: The dataset's images (with ``vehicle_group`` set).
        test_fraction: Target share of images (and of each label's images) on the test side.
        seed: Changes which groups go to test, deterministically.

    Returns:
        The split; every group wholly on one side.
    """
    if not 0 < test_fraction < 1:
        raise ValueError("test_fraction must be between 0 and 1")
    groups: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        groups[record.vehicle_group or record.image_id].append(record)
    label_images = Counter(k for r in records for k in r.label_keys())
    target = {k: test_fraction * n for k, n in label_images.items()}
    target_images = test_fraction * len(records)
    in_test: Counter[str] = Counter()
    test_images = 0
    chosen: set[str] = set()

    def rarest(group: list[ImageRecord]) -> tuple[int, str]:
        keys = {k for r in group for k in r.label_keys()}
        return min(((label_images[k], k) for k in keys), default=(len(records) + 1, ""))

    for name in sorted(groups, key=lambda g: (rarest(groups[g]), _order(g, seed))):
        group = groups[name]
        keys = Counter(k for r in group for k in r.label_keys())
        # Take a group when it brings the test side closer to every target it touches.
        need = [target[k] - in_test[k] for k in keys]
        fits_labels = all(n >= c / 2 for n, c in zip(need, keys.values(), strict=True)) if keys else True
        fits_size = target_images - test_images >= len(group) / 2
        if fits_labels and fits_size:
            chosen.add(name)
            in_test.update(keys)
            test_images += len(group)
    test = [r for r in records if (r.vehicle_group or r.image_id) in chosen]
    train = [r for r in records if (r.vehicle_group or r.image_id) not in chosen]
    return Split(train=train, test=test)

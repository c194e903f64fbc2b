"""Stratified sampling of images so that every label appears (the proof-of-concept set)."""

from __future__ import annotations

import random
from collections import Counter

from index.dataset.records import ImageRecord


def stratified_sample(records: list[ImageRecord], n: int, seed: int = 0) -> list[ImageRecord]:
    """Draw ``n`` images, stratified by label, in which every present label appears.

    Each image belongs to the stratum of its rarest label (undamaged images form their own
    stratum); ``n`` is shared across strata in proportion to their size, at least one image
    each. A label still missing after that (it only co-occurs with rarer ones) is brought in
    by swapping an image from the largest stratum. Deterministic for a given seed.

    Args:
        records: All usable images.
        n: How many to draw; all of them when ``n`` is not smaller.
        seed: Random seed.

    Returns:
        The sample, in the order of ``records``.
    """
    if n >= len(records):
        return list(records)
    rng = random.Random(seed)
    frequency = Counter(key for r in records for key in r.label_keys())
    strata: dict[str, list[ImageRecord]] = {}
    for record in records:
        keys = record.label_keys()
        stratum = min(keys, key=lambda k: (frequency[k], k)) if keys else ""
        strata.setdefault(stratum, []).append(record)
    for members in strata.values():
        rng.shuffle(members)
    names = sorted(strata, key=lambda s: (len(strata[s]), s))
    quota = {s: 1 for s in names[:n]}
    remaining = n - len(quota)
    if remaining > 0:
        spare = {s: len(strata[s]) - quota[s] for s in quota}
        total = sum(spare.values())
        shares = {s: remaining * spare[s] / total for s in quota} if total else {}
        for s in quota:
            quota[s] += int(shares.get(s, 0))
        leftover = n - sum(quota.values())
        for s in sorted(quota, key=lambda s: shares.get(s, 0) - int(shares.get(s, 0)), reverse=True):
            if leftover <= 0:
                break
            if quota[s] < len(strata[s]):
                quota[s] += 1
                leftover -= 1
    chosen = [r for s, q in quota.items() for r in strata[s][:q]]
    chosen_ids = {r.image_id for r in chosen}
    for key in sorted(frequency, key=lambda k: frequency[k]):
        if any(key in r.label_keys() for r in chosen):
            continue
        candidate = next((r for r in records if key in r.label_keys() and r.image_id not in chosen_ids), None)
        biggest = max(quota, key=lambda s: quota[s])
        victim = next((r for r in reversed(chosen) if r in strata[biggest]), None)
        if candidate is None or victim is None:
            continue
        chosen[chosen.index(victim)] = candidate
        chosen_ids.discard(victim.image_id)
        chosen_ids.add(candidate.image_id)
        quota[biggest] -= 1
    order = {r.image_id: i for i, r in enumerate(records)}
    return sorted(chosen, key=lambda r: order[r.image_id])

"""The plan of a synthetic LabelMe set: vehicles, file names, flags and damages of each photo.

:func:`plan_labelme` decides everything about the photos except their pixels and polygons, so
that the set can be drawn in any order (or by several processes) and still be the same.
Photos come in per-vehicle groups (same prefix, shots seconds to minutes apart, different
zones; vehicles hours apart, all in April 2019), in the user's naming: image
``zona1_ko_{a}_{b}_{ms}_zona_{zone}_imageDANO_original.jpg`` beside JSON
``zona1_ko_{a}_{b}_{ms}_zona_{zone}_labelDANO_modificado.json``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from index.synth.dataset import check_request, spread_labels
from index.synth.scene import BODY_COLOURS, ENVIRONMENTS
from index.synth.vehicle_marks import LABEL_STYLES

DEFAULT_LABELS: tuple[str, ...] = ("1", "2", "3", "4", "5", "6", "7", "8")
ROOT_PREFIX = "Minsait_Old_Dataset/Minsait_Dataset_Images/Minsait_Dataset_Images_Zonas"
#: 2019-04-01T00:00:00Z in milliseconds since the epoch.
APRIL_2019_MS = 1554076800000
#: How often each vehicle label is drawn beyond the guaranteed cycle (scratches dominate).
_LABEL_WEIGHTS = {"1": 0.34, "2": 0.15, "3": 0.10, "4": 0.10, "5": 0.08, "6": 0.07, "7": 0.07,
                  "8": 0.09}
_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class Damage:
    """One damage to draw: ``count`` > 1 is a cluster of small same-label scratches, each its
    own shape."""

    label: str
    count: int = 1


@dataclass(frozen=True)
class PhotoPlan:
    """Everything about one synthetic LabelMe photo except its pixels and polygons."""

    index: int
    seed: int
    size: tuple[int, int]
    vehicle: int
    prefix: str
    timestamp_ms: int
    zone: int
    body_rgb: tuple[int, int, int]
    environment: str
    damages: tuple[Damage, ...]
    dudosa: bool
    editada: bool
    incorrecta: bool
    extra_keys: str  # which shapes carry piece/pixelated_type: "all", "none" or "mixed"
    piece: int
    pixelated_type: int

    @property
    def stem_prefix(self) -> str:
        return f"{self.prefix}_{self.timestamp_ms}_zona_{self.zone}"

    @property
    def image_name(self) -> str:
        return f"{self.stem_prefix}_imageDANO_original.jpg"

    @property
    def json_name(self) -> str:
        return f"{self.stem_prefix}_labelDANO_modificado.json"

    @property
    def root(self) -> str:
        return f"{ROOT_PREFIX}/{self.zone}/{self.image_name}"


def plan_labelme(n: int, size: tuple[int, int] = (4000, 3000), seed: int = 0,
                 labels: Sequence[str] = DEFAULT_LABELS) -> list[PhotoPlan]:
    """Plan ``n`` photos: vehicles, file names, flags and damages (deterministic per seed)."""
    check_request(n, size, labels, "labels")
    labels = tuple(labels)
    rng = np.random.default_rng([seed, 0x5EED])
    clean, primaries = spread_labels(n, labels, rng)
    weights = np.array([_LABEL_WEIGHTS.get(x, 0.1) for x in labels])
    weights = weights / weights.sum()
    colours = [c for c, _ in BODY_COLOURS]
    colour_p = np.array([p for _, p in BODY_COLOURS])
    colour_p = colour_p / colour_p.sum()
    # vehicles hours apart, and the whole set inside April 2019 (2,711 photos: about 23 days)
    mean_gap_h = min(6.0, max(1.25, 650.0 / max(1, math.ceil(n / 6))))
    t = APRIL_2019_MS + int(rng.integers(7 * _HOUR_MS, 10 * _HOUR_MS))
    plans: list[PhotoPlan] = []
    vehicle = 0
    while len(plans) < n:
        prefix = f"zona1_ko_{int(rng.integers(1, 5))}_{int(rng.integers(1, 10))}"
        body = colours[int(rng.choice(len(colours), p=colour_p))]
        env = ENVIRONMENTS[int(rng.integers(len(ENVIRONMENTS)))]
        shots = min(int(rng.integers(3, 10)), n - len(plans))
        zones = (rng.permutation(9)[:shots] + 1).tolist()
        for j, zone in enumerate(zones):
            if j:
                t += int(rng.integers(5_000, 180_000))
            i = len(plans)
            damages: list[Damage] = []
            if i not in clean:
                chosen = [next(primaries)]
                extra = int(rng.choice(4, p=[0.45, 0.3, 0.15, 0.1]))
                chosen += [labels[k] for k in rng.choice(len(labels), extra, p=weights)]
                for lab in chosen:
                    cluster = LABEL_STYLES.get(lab) == "scratch" and rng.random() < 0.25
                    damages.append(Damage(lab, int(rng.integers(3, 8)) if cluster else 1))
            plans.append(PhotoPlan(
                index=i, seed=seed, size=(int(size[0]), int(size[1])), vehicle=vehicle,
                prefix=prefix, timestamp_ms=t, zone=int(zone), body_rgb=body, environment=env,
                damages=tuple(damages), dudosa=bool(rng.random() < 0.10),
                editada=bool(rng.random() < 0.5), incorrecta=bool(rng.random() < 0.03),
                extra_keys=str(rng.choice(["all", "none", "mixed"], p=[0.45, 0.35, 0.2])),
                piece=int(rng.integers(1, 13)), pixelated_type=int(rng.integers(1, 4))))
        vehicle += 1
        t += int(rng.uniform(1.0, 2 * mean_gap_h - 1.0) * _HOUR_MS)
    return plans

"""The region strategies a retrieval evaluation compares, by name.

Query kinds
-----------
* **region** strategies (``default``, ``margin=X``, ``no-merge``, ``min-side=X``): the query is a
  test region crop (one defect, or several merged marks of one label) and the index holds train
  region crops. A region node carries exactly one label.
* **image**: the query is the whole test photo, the index holds whole train photos.
* **tile** (``tile`` or ``tile=RxC``): the queries are the test photo's grid tiles that hold an
  annotation (a tile holds the annotations whose box centre falls in it), the index holds
  every train tile, labelled or not.

Names combine with ``+``, e.g. ``margin=1.0+no-merge``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from index.config import RegionStrategy
from index.errors import EvaluationError

#: The strategies compared when ``--strategies`` is not given.
DEFAULT_STRATEGIES = "default,margin=0.25,margin=1.0,no-merge,image,tile"


@dataclass(frozen=True)
class StrategySpec:
    """One named region strategy: overrides of the config's ``regions`` and the node kind.

    Attributes:
        name: As given on the command line, e.g. ``margin=0.25`` or ``margin=1.0+no-merge``.
        kind: The node kind indexed and queried: ``region``, ``image`` or ``tile``.
        overrides: ``RegionStrategy`` fields changed from the config, as (field, value) pairs.
    """

    name: str
    kind: str = "region"
    overrides: tuple[tuple[str, Any], ...] = ()

    def settings(self, base: RegionStrategy) -> str:
        """The strategy's effective knobs in words, e.g. ``margin 0.5, min side 0.06, merge 0.02``."""
        r = self.regions(base)
        if self.kind == "image":
            return f"whole photo, longer side {r.image_max_side}px"
        if self.kind == "tile":
            return f"tiles {r.tile_grid[0]}x{r.tile_grid[1]}, {r.crop_size}px"
        merge = f"merge {r.merge_distance:g}" if r.merge_distance > 0 else "no merge"
        return f"margin {r.context_margin:g}, min side {r.min_side:g}, {merge}, {r.crop_size}px"

    def regions(self, base: RegionStrategy) -> RegionStrategy:
        """The config's region strategy with this row's overrides, producing only ``kind``."""
        data = base.model_dump()
        data.update(dict(self.overrides))
        data["kinds"] = [self.kind]
        return RegionStrategy.model_validate(data)


STRATEGY_NAMES_HELP = ("default | margin=X (context margin) | min-side=X | no-merge | image | tile | "
                       "tile=RxC, combined with '+' (e.g. margin=1.0+no-merge)")


def parse_strategy(text: str) -> StrategySpec:
    """Parse one strategy name (see the module docstring for the named set).

    Raises:
        EvaluationError: If a part names no strategy or its value does not validate.
    """
    name = text.strip()
    if not name:
        raise EvaluationError(f"empty strategy name; known: {STRATEGY_NAMES_HELP}")
    kind, overrides = "region", {}
    for part in name.split("+"):
        key, _, value = part.strip().partition("=")
        try:
            if key == "default" and not value:
                continue
            if key == "no-merge" and not value:
                overrides["merge_distance"] = 0.0
            elif key == "margin" and value:
                overrides["context_margin"] = float(value)
            elif key == "min-side" and value:
                overrides["min_side"] = float(value)
            elif key == "image" and not value:
                kind = "image"
            elif key == "tile":
                kind = "tile"
                if value:
                    rows, cols = (int(v) for v in value.lower().split("x"))
                    overrides["tile_grid"] = (rows, cols)
            else:
                raise EvaluationError(f"unknown strategy '{part}' in '{name}'; known: {STRATEGY_NAMES_HELP}")
        except ValueError as exc:
            if isinstance(exc, EvaluationError):
                raise
            raise EvaluationError(f"strategy '{part}': bad value '{value}'") from None
    spec = StrategySpec(name=name, kind=kind, overrides=tuple(sorted(overrides.items())))
    try:
        spec.regions(RegionStrategy())
    except ValueError as exc:
        first = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
        raise EvaluationError(f"strategy '{name}': {first}") from None
    return spec


def parse_strategies(text: str | Iterable[str]) -> list[StrategySpec]:
    """Parse a comma list (or several) of strategy names, dropping duplicates."""
    parts = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    specs = [parse_strategy(p) for p in parts if p.strip()]
    if not specs:
        raise EvaluationError(f"no strategy given; known: {STRATEGY_NAMES_HELP}")
    return list({s.name: s for s in specs}.values())

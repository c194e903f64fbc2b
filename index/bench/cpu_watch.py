"""How much CPU other processes used while a benchmark phase ran.

On a shared machine a benchmark's figures are only as good as the machine was quiet; this
measures how quiet it was, phase by phase.
"""

from __future__ import annotations

import os
import time


class CpuWatch:
    """How much CPU other processes used while a phase ran (this process and its children excluded).

    ``share`` is their CPU seconds over the phase's wall time x cores: 0 on an idle machine.
    ``with watch.phase("name"):`` measures one phase into ``watch.shares["name"]``.
    """

    def __init__(self) -> None:
        self.shares: dict[str, float] = {}

    @staticmethod
    def _now() -> tuple[float, float, float]:
        import psutil

        t = psutil.cpu_times()
        busy = t.user + t.system + sum(getattr(t, k, 0.0) for k in ("nice", "irq", "softirq"))
        mine = os.times()
        own = mine.user + mine.system + mine.children_user + mine.children_system
        return time.perf_counter(), busy, own

    def phase(self, name: str) -> CpuPhase:
        """A context manager that measures the phase ``name``."""
        return CpuPhase(self, name)


class CpuPhase:
    """One measured phase of a :class:`CpuWatch`."""

    def __init__(self, watch: CpuWatch, name: str) -> None:
        self.watch, self.name = watch, name

    def __enter__(self) -> None:
        self.start = self.watch._now()

    def __exit__(self, *exc: object) -> None:
        end = self.watch._now()
        wall = end[0] - self.start[0]
        others = (end[1] - self.start[1]) - (end[2] - self.start[2])
        share = max(0.0, others) / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0
        self.watch.shares[self.name] = round(min(1.0, share), 3)

"""What every (strategy, embedder) row of one retrieval evaluation shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index.config import DomainConfig
from index.dataset.records import ImageRecord
from index.dataset.splits import Split
from index.regions.cut import pixel_signature

#: Called with the number of photos just processed.
Progress = Callable[[int], None]


@dataclass
class RunContext:
    """What every row of one run shares.

    Attributes:
        config: The domain configuration (its ``regions`` is the base of every strategy).
        split: The vehicle-grouped train/test split.
        k: Cut-off of precision@k, hit@k and the k-NN vote.
        depth: Depth of the ranked list for AP (0: the whole index).
        cache_root: The folder of the cached row indexes and query vectors.
        workers: Decoding threads.
        progress: Called with the number of photos just processed.
        resamples: Bootstrap resamples of the test vehicles, per interval.
        confidence: Two-sided coverage of the intervals.
        seed: Seed of the bootstrap.
        signatures: Pixel signature of each image id, computed once per run.
        queries_out: One record per query of every row (``retrieval_queries.jsonl``).
    """

    config: DomainConfig
    split: Split
    k: int
    depth: int
    cache_root: Path
    workers: int
    progress: Progress | None
    resamples: int = 2000
    confidence: float = 0.95
    seed: int = 0
    signatures: dict[str, str] = field(default_factory=dict)
    queries_out: list[dict[str, Any]] = field(default_factory=list)

    def signature(self, record: ImageRecord) -> str:
        """The photo's pixel signature (``unreadable`` when it cannot be read), cached."""
        if record.image_id not in self.signatures:
            try:
                self.signatures[record.image_id] = pixel_signature(record)
            except OSError:
                self.signatures[record.image_id] = "unreadable"
        return self.signatures[record.image_id]

    def advance(self, n: int) -> None:
        """Report ``n`` photos as processed."""
        if self.progress and n:
            self.progress(n)

"""The decode floor: how fast the photos decode, and nothing else.

Every photo decoded once at full resolution by ``os.cpu_count()`` threads (best of two
passes), plus single-core reference times at full, 1/2, 1/4 and 1/8 scale; files are read
into the page cache first and Pillow keeps its freed image blocks, so the figures measure the
decoder, not the disk or the allocator.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def _decode(path: Path, reduce: int = 1) -> None:
    from PIL import Image

    with Image.open(path) as img:
        if reduce > 1:
            img.draft("RGB", (img.width // reduce, img.height // reduce))
        img.load()


class ReusedImageMemory:
    """Let Pillow keep freed image blocks while decoding, so every decode reuses warm memory.

    Otherwise glibc may hand each 12 MP buffer (48 MB, RGBX) back to the kernel and the next
    decode page-faults it in again (~12,000 faults, ~17 ms here), depending on the process's
    allocation history: the floor would measure the allocator's mood, not the decoder.
    """

    def __init__(self, size: tuple[int, int], threads: int) -> None:
        from PIL import Image

        self.core = Image.core
        per_photo = -(-size[0] * size[1] * 4 // self.core.get_block_size())
        self.blocks = (threads + 1) * per_photo + 2

    def __enter__(self) -> None:
        self.saved = self.core.get_blocks_max()
        self.core.set_blocks_max(max(self.saved, self.blocks))

    def __exit__(self, *exc: object) -> None:
        self.core.set_blocks_max(self.saved)  # also frees the cached blocks


def decode_reference(photos: list[Path]) -> dict[str, float]:
    """Single-core ms/photo at full, 1/2, 1/4 and 1/8 scale (DCT scaling, ``Image.draft``)."""
    _decode(photos[0])  # warm-up: memory blocks, decoder tables
    out = {}
    for reduce, key in ((1, "full"), (2, "half"), (4, "quarter"), (8, "eighth")):
        started = time.perf_counter()
        for path in photos:
            _decode(path, reduce)
        out[key] = (time.perf_counter() - started) / len(photos) * 1000
    return out


def decode_floor(photos: list[Path], threads: int, passes: int = 2) -> list[float]:
    """Seconds to decode every photo once at full resolution with ``threads`` threads, per pass."""
    times = []
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="floor") as pool:
        for _ in range(passes):
            started = time.perf_counter()
            list(pool.map(_decode, photos))
            times.append(time.perf_counter() - started)
    return times


def warm_cache(photos: list[Path]) -> None:
    """Read every file once, so each measurement starts from the page cache."""
    for path in photos:
        with open(path, "rb") as handle:
            while handle.read(1 << 22):
                pass


def pillow_version() -> str:
    """The version of Pillow that decodes (named in the benchmark's notes)."""
    import PIL

    return PIL.__version__

"""Plain helpers of the tool tests: the index's region nodes and a photo with a red square."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def region_nodes(index, label=None):
    """The index's region nodes (of one label, if given), sorted by node id."""
    nodes = [n for n in index.store.get_nodes() if n.metadata["kind"] == "region"]
    if label:
        nodes = [n for n in nodes if n.metadata["label"] == label]
    return sorted(nodes, key=lambda n: n.node_id)


def write_square_photo(path: Path, size=(2000, 1500), square=(1000, 600, 1400, 900), colour=(230, 20, 20)) -> Path:
    """A grey JPEG photo with one solid-colour rectangle (pixels ``square``)."""
    img = Image.new("RGB", size, (128, 128, 128))
    img.paste(colour, square)
    img.save(path, "JPEG", quality=95)
    return path

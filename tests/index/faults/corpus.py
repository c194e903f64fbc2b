"""A generated corpus of bad LabelMe inputs: each case writes one fault beside good data.

Every case is a function ``(root) -> None`` that writes its fault into the dataset folder
``root``; :data:`CASES` maps its name to it and to the outcome the read must name: a skip or a
repair reason. Photos are tiny; oversized ones only *declare* their size in a patched header.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from tests.fixtures.datasets import labelme_json, make_photo, polygon

SQUARE = [[100, 100], [200, 100], [200, 200], [100, 200]]
GOOD_STEMS = ("good_a", "good_b")


def write_good(root: Path) -> None:
    """Two well-formed photo and annotation pairs, which every case must leave readable."""
    for stem in GOOD_STEMS:
        make_photo(root / f"{stem}.jpg")
        (root / f"{stem}.json").write_text(json.dumps(labelme_json(f"{stem}.jpg", [polygon("1", SQUARE)])))


def _annotation(root: Path, stem: str, doc: dict) -> None:
    (root / f"{stem}.json").write_text(json.dumps(doc))  # json.dumps writes NaN / Infinity as JS does


def _pair(root: Path, stem: str, marks: list, **top: object) -> None:
    make_photo(root / f"{stem}.jpg")
    _annotation(root, stem, {**labelme_json(f"{stem}.jpg", marks), **top})


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` (its pixel data is one tiny row)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4)) + chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose frame header is patched to declare ``width`` x ``height``."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "gray").save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bomb_png(root: Path) -> None:
    (root / "bomb.png").write_bytes(png_declaring(40000, 40000))
    _annotation(root, "bomb", labelme_json("bomb.png", [polygon("1", SQUARE)], size=(40000, 40000)))


def bomb_jpeg(root: Path) -> None:
    (root / "bomb_j.jpg").write_bytes(jpeg_declaring(40000, 40000))
    _annotation(root, "bomb_j", labelme_json("bomb_j.jpg", [polygon("1", SQUARE)], size=(40000, 40000)))


def huge_png(root: Path) -> None:
    """20000 x 20000: under Pillow's own guard, over dataset.max_image_pixels (400 MP > 100 MP)."""
    (root / "huge.png").write_bytes(png_declaring(20000, 20000))
    _annotation(root, "huge", labelme_json("huge.png", [polygon("1", SQUARE)], size=(20000, 20000)))


def shapes_number(root: Path) -> None:
    _pair(root, "shapes_number", [], shapes=5)


def shapes_object(root: Path) -> None:
    _pair(root, "shapes_object", [], shapes={"label": "1", "points": SQUARE})


def shape_not_object(root: Path) -> None:
    _pair(root, "shape_not_object", ["oops", polygon("1", SQUARE)])


def width_word(root: Path) -> None:
    _pair(root, "width_word", [polygon("1", SQUARE)], imageWidth="wide")


def width_list(root: Path) -> None:
    _pair(root, "width_list", [polygon("1", SQUARE)], imageWidth=[800])


def nan_coordinate(root: Path) -> None:
    _pair(root, "nan_coordinate", [polygon("1", [[float("nan"), 100], [200, 100], [200, 200]])])


def inf_coordinate(root: Path) -> None:
    _pair(root, "inf_coordinate", [polygon("1", [[100, 100], [float("inf"), 100], [200, 200]])])


def huge_coordinate(root: Path) -> None:
    _pair(root, "huge_coordinate", [polygon("1", [[100, 100], [1e300, 100], [200, 200]])])


def points_not_list(root: Path) -> None:
    _pair(root, "points_not_list", [{"label": "1", "points": 5, "shape_type": "polygon"}])


def points_words(root: Path) -> None:
    _pair(root, "points_words", [polygon("1", [["a", "b"], [1, 2], [3, 4]])])


def long_image_path(root: Path) -> None:
    _annotation(root, "long_image_path", labelme_json("x" * 5000 + ".jpg", [polygon("1", SQUARE)]))


def image_path_not_text(root: Path) -> None:
    _annotation(root, "image_path_not_text", {**labelme_json("x.jpg", [polygon("1", SQUARE)]), "imagePath": ["a.jpg"]})


def latin1_annotated_photo(root: Path) -> None:
    """A photo whose name is Latin-1 bytes (as old Windows zips leave it), named by its JSON in UTF-8."""
    make_photo(Path(os.fsdecode(bytes(root) + b"/da\xf1o.jpg")))
    _annotation(root, "dano", labelme_json("daño.jpg", [polygon("1", SQUARE)]))


def latin1_unannotated_photo(root: Path) -> None:
    make_photo(Path(os.fsdecode(bytes(root) + b"/sin_anotaci\xf3n.jpg")))


def latin1_annotation(root: Path) -> None:
    make_photo(root / "plain.jpg")
    Path(os.fsdecode(bytes(root) + b"/anotaci\xf3n.json")).write_text(
        json.dumps(labelme_json("plain.jpg", [polygon("1", SQUARE)])))


def named_pipe(root: Path) -> None:
    os.mkfifo(root / "x.json")


def parent_path(root: Path) -> None:
    """An ``imagePath`` with ``../`` that names a real photo outside the dataset folder."""
    make_photo(root.parent / "outside.jpg")
    _annotation(root, "escape", labelme_json("../outside.jpg", [polygon("1", SQUARE)]))


def absolute_path(root: Path) -> None:
    make_photo(root.parent / "elsewhere.jpg")
    _annotation(root, "escape_abs", labelme_json(str(root.parent / "elsewhere.jpg"), [polygon("1", SQUARE)]))


CASES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # name: (writer, "skipped" or "repaired", reason)
    "bomb_png": (bomb_png, "skipped", "too_many_pixels"),
    "bomb_jpeg": (bomb_jpeg, "skipped", "too_many_pixels"),
    "huge_png": (huge_png, "skipped", "too_many_pixels"),
    "shapes_number": (shapes_number, "skipped", "malformed_annotation"),
    "shapes_object": (shapes_object, "skipped", "malformed_annotation"),
    "shape_not_object": (shape_not_object, "skipped", "malformed_shape"),
    "width_word": (width_word, "repaired", "malformed_size"),
    "width_list": (width_list, "repaired", "malformed_size"),
    "nan_coordinate": (nan_coordinate, "skipped", "malformed_shape"),
    "inf_coordinate": (inf_coordinate, "skipped", "malformed_shape"),
    "huge_coordinate": (huge_coordinate, "skipped", "malformed_shape"),
    "points_not_list": (points_not_list, "skipped", "malformed_shape"),
    "points_words": (points_words, "skipped", "malformed_shape"),
    "long_image_path": (long_image_path, "skipped", "missing_image"),
    "image_path_not_text": (image_path_not_text, "skipped", "malformed_annotation"),
    "latin1_annotated_photo": (latin1_annotated_photo, "skipped", "undecodable_name"),
    "latin1_unannotated_photo": (latin1_unannotated_photo, "skipped", "undecodable_name"),
    "latin1_annotation": (latin1_annotation, "skipped", "undecodable_name"),
    "named_pipe": (named_pipe, "skipped", "-"),  # not an annotation at all: ignored, and the read ends
    "parent_path": (parent_path, "skipped", "outside_dataset"),
    "absolute_path": (absolute_path, "skipped", "outside_dataset"),
}


def write_corpus(root: Path, names: list[str] | None = None) -> None:
    """The good pairs plus the named cases (default: all of them) in one dataset folder."""
    root.mkdir(parents=True, exist_ok=True)
    write_good(root)
    for name in list(CASES) if names is None else names:
        CASES[name][0](root)

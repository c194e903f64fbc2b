"""A contact sheet: a grid of example crops per label with their outlines drawn.

It lets a person check at a glance that labels, crops and margins are right. Each photo is
decoded once, at the smallest JPEG scale that still gives the cell's resolution.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from index.config import DomainConfig
from index.dataset.records import Issue
from index.imaging.decode import ImageReadError, decode_image
from index.imaging.drawing import cut_crop, draw_outlines, label_colour
from index.regions.plan import RegionCrop

CELL = 192
HEADER = 26
LEFT = 190


def _pick(crops: list[RegionCrop], per_row: int) -> list[RegionCrop]:
    """Up to ``per_row`` crops, spread across different photos and sizes."""
    by_image: dict[str, list[RegionCrop]] = defaultdict(list)
    for crop in crops:
        by_image[crop.record.image_id].append(crop)
    picked: list[RegionCrop] = []
    rounds = [sorted(v, key=lambda c: c.crop_box[2] - c.crop_box[0]) for v in by_image.values()]
    depth = 0
    while len(picked) < per_row and any(len(r) > depth for r in rounds):
        picked.extend(r[depth] for r in rounds if len(r) > depth)
        depth += 1
    step = max(1, len(picked) // per_row) if len(picked) > per_row else 1
    return picked[::step][:per_row]


def render_contact_sheet(
    crops: list[RegionCrop], config: DomainConfig, path: Path, per_row: int = 6
) -> list[Issue]:
    """Render the contact sheet to ``path`` (PNG).

    Rows: one per label (region crops, outlines in the label's colour), then background.

    Returns:
        Issues for photos that could not be decoded (those cells stay empty).
    """
    keys = config.taxonomy.label_keys()
    rows: list[tuple[str, list[RegionCrop], int]] = []
    for i, label in enumerate(config.taxonomy.labels):
        members = [c for c in crops if c.kind == "region" and c.label_keys == [label.key]]
        rows.append((f"{label.id} {label.name}", members, i))
    backgrounds = [c for c in crops if c.kind == "background"]
    if backgrounds:
        rows.append(("background", backgrounds, -1))
    chosen = [(title, _pick(members, per_row), len(members), colour) for title, members, colour in rows]
    sheet = Image.new("RGB", (LEFT + per_row * (CELL + 4), len(chosen) * (CELL + HEADER)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    needed: dict[str, list[RegionCrop]] = defaultdict(list)
    for _, picked, _, _ in chosen:
        for crop in picked:
            needed[crop.record.image_id].append(crop)
    cells: dict[str, Image.Image] = {}
    issues: list[Issue] = []
    for crops_of_photo in needed.values():
        record = crops_of_photo[0].record
        smallest = min(c.crop_box[2] - c.crop_box[0] for c in crops_of_photo)
        scale = min(1.0, CELL / max(1, smallest))
        try:
            photo, photo_scale = decode_image(
                record.image_path, embedded=record.embedded, exif_transpose=record.exif_transpose,
                min_scale=scale,
            )
        except ImageReadError as exc:
            issues.append(Issue(str(record.image_path), "corrupt_image", f"{exc}."))
            continue
        for crop in crops_of_photo:
            x0, y0, x1, y1 = crop.crop_box
            fit = CELL / max(x1 - x0, y1 - y0)
            size = (max(1, round((x1 - x0) * fit)), max(1, round((y1 - y0) * fit)))
            cell = cut_crop(photo, crop.crop_box, size, photo_scale)
            polygons = [[((x - x0) * fit, (y - y0) * fit) for x, y in r.polygon] for r in crop.regions]
            colours = [label_colour(keys.index(r.label_key)) for r in crop.regions]
            cells[crop.node_id] = draw_outlines(cell, polygons, colours or (255, 255, 255), width=2)
    for row, (title, picked, count, _) in enumerate(chosen):
        top = row * (CELL + HEADER)
        draw.text((8, top + HEADER + CELL // 2 - 14), title[:28], fill=(240, 240, 240), font=font)
        draw.text((8, top + HEADER + CELL // 2 + 2), f"{count} crops", fill=(160, 160, 160), font=font)
        for col, crop in enumerate(picked):
            left = LEFT + col * (CELL + 4)
            if crop.node_id in cells:
                sheet.paste(cells[crop.node_id], (left, top + HEADER))
            caption = f"{Path(crop.record.image_id).name[:24]} z{crop.record.attributes.get('zone', '?')}"
            draw.text((left, top + 8), caption, fill=(180, 180, 180), font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return issues


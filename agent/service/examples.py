"""``GET /v1/examples/{id}`` and ``/v1/examples/{id}/image``: an example the model was shown
(an id of ``report.examples_used``), its outline and its stored crop, for the page.

The id is looked up in the index's store; the crop file is the one the store records, already
confined to the index directory (:meth:`index.search.DamageIndex.get`): a request string is
never joined onto a path.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from agent.service.errors import ServiceError
from agent.service.traces import checked_trace_id

router = APIRouter()


async def _hit(request: Request, example_id: str) -> Any:
    state = request.app.state.service
    await state.index.wait()
    found = await asyncio.to_thread(state.engine.index.get, [example_id])
    if not found:
        raise ServiceError(404, f"No example '{example_id[:80]}' in the index {state.engine.index_dir.name}; "
                                "example ids are those of a report's examples_used.", code="example_not_found",
                           param="id")
    return found[0]


def _score(traces_dir: Any, trace_id: str, example_id: str) -> float | None:
    """The best similarity a ``search_similar_damage`` call of that query gave the example."""
    from agent.trace import TraceNotFoundError, load_trace

    try:
        events = load_trace(traces_dir, trace_id)
    except TraceNotFoundError:
        return None
    scores = [float(hit["similarity"]) for event in events
              if event.get("type") == "tool_call" and event.get("name") == "search_similar_damage"
              for hit in (event.get("result") or {}).get("hits") or []
              if isinstance(hit, dict) and hit.get("id") == example_id and hit.get("similarity") is not None]
    return max(scores) if scores else None


def describe_example(hit: Any, index: Any, engine: Any) -> dict[str, Any]:
    """The example as the page draws it: labels, the crop's size, and every annotation reaching
    into the crop (polygons and the example's own box) in the crop's pixel coordinates."""
    from index.imaging.decode import ImageReadError, read_header
    from tools.context import ToolContext
    from tools.examples import annotations_in_crop, polygons_in_image

    meta = hit.metadata
    size: tuple[int, int] | None = None
    if hit.crop_path:
        try:
            size = read_header(Path(hit.crop_path)).oriented_size
        except ImageReadError:
            size = None
    polygons: list[list[list[float]]] = []
    polygon_labels: list[str | None] = []
    bbox = None
    crop_box = meta.get("crop_box")
    if size and crop_box:
        ctx = ToolContext(index=index, taxonomy=engine.taxonomy, model=engine.config.model, agent=engine.config.agent)
        annotations = annotations_in_crop(ctx, meta)
        mapped = polygons_in_image([p for p, _ in annotations], crop_box, size)
        polygons = [[[round(x, 1), round(y, 1)] for x, y in polygon] for polygon in mapped]
        polygon_labels = [label for _, label in annotations]
        if meta.get("bbox"):
            x0, y0, x1, y1 = meta["bbox"]
            corners = polygons_in_image([[[x0, y0], [x1, y1]]], crop_box, size)[0]
            bbox = [round(value, 1) for corner in corners for value in corner]
    label = engine.taxonomy.find(meta.get("label")) if meta.get("label") else None
    return {
        "id": hit.id, "kind": hit.kind, "label": hit.label, "label_name": label.name if label else None,
        "labels": hit.labels, "source_image": Path(str(hit.source_image)).name, "zone": hit.zone,
        "description": hit.description, "width": size[0] if size else None, "height": size[1] if size else None,
        "polygons": polygons, "polygon_labels": polygon_labels, "bbox": bbox, "score": None,
        "has_image": bool(hit.crop_path and size),
    }


@router.get("/v1/examples/{example_id}", summary="An example the model was shown: labels and outline")
async def example(request: Request, example_id: str, trace: str | None = None) -> JSONResponse:
    """The example's labels, source image name, crop size, and outline polygons and box in the
    crop's pixel coordinates; ``?trace=ID`` adds its similarity score in that query."""
    state = request.app.state.service
    hit = await _hit(request, example_id)
    data = await asyncio.to_thread(describe_example, hit, state.engine.index, state.engine)
    if trace:
        data["score"] = await asyncio.to_thread(_score, state.traces_dir, checked_trace_id(trace), hit.id)
    return JSONResponse(data)


@router.get("/v1/examples/{example_id}/image", summary="The example's stored crop (JPEG)",
            response_class=FileResponse)
async def example_image(request: Request, example_id: str) -> FileResponse:
    """The crop the index stored for the example (no outline drawn: the JSON has the outline)."""
    hit = await _hit(request, example_id)
    path = Path(hit.crop_path) if hit.crop_path else None
    if path is None or not path.is_file():
        raise ServiceError(404, f"The example '{hit.id}' has no stored crop in the index.", code="example_image_missing",
                           param="id")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

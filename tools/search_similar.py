"""Tool: labelled examples that look like the query photo, or like a boxed part of it."""

# No `from __future__ import annotations`: the signature is shown to the model as written.

import logging

from tools.arguments import coerce_box, coerce_int, coerce_label
from tools.boxes import box_from_qwen, query_crop_box
from tools.context import ToolContext, ToolUnavailableError
from tools.examples import present_examples
from tools.recording import tool_function
from tools.results import ToolResult

logger = logging.getLogger(__name__)


def crop_output_size(width: int, height: int, longest: int) -> tuple[int, int]:
    """Size of an embedded crop: longer side ``longest``, as the index's region crops."""
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


@tool_function("search_similar_damage")
def search_similar_damage(
    ctx: ToolContext, region: list[int] | None = None, label: str | None = None, k: int = 3
) -> ToolResult:
    """Find labelled reference examples that look like the query photo or a part of it.

    Use it before naming a damage type: compare the suspect area with real annotated cases. Each example comes back as a line (id, label, similarity 0-1 where higher is closer, zone, size); its image, with the annotated damage outlined in colour, is shown after the tool results, under the same caption.

    Args:
        region (list of 4 ints, optional): box [x1, y1, x2, y2] around the suspect area in 0-1000 coordinates of the photo you were shown (as bbox_2d), e.g. [420, 310, 640, 520]. Omit to compare the whole photo with whole reference photos.
        label (string, optional): only examples of this damage type, e.g. "scratch", "dent" or a Spanish name such as "rayones".
        k (int, optional): how many examples, 1-10 (default 3).
    """
    box = coerce_box(region, "region")
    chosen = coerce_label(label, ctx.labels)
    k_used, clamped = coerce_int(k, "k")
    photo = ctx.require_photo()
    strategy = ctx.strategy
    query: dict = {"photo_size": list(photo.size)}
    if box is None:
        kind = "image"
        image = ctx.index.query_image(photo)
        query["image_size"] = list(image.size)
        target = "the whole photo"
    else:
        kind = ctx.agent.example_kind
        pixels = box_from_qwen(box, photo.width, photo.height)
        crop_box = query_crop_box(
            pixels, photo.width, photo.height,
            context_margin=strategy.context_margin, min_side=strategy.min_side, square=strategy.square,
        )
        out = crop_output_size(crop_box[2] - crop_box[0], crop_box[3] - crop_box[1], strategy.crop_size)
        image, decode_scale = photo.crop(crop_box, out)
        query.update(box_px=list(pixels), crop_box=list(crop_box), crop_size=list(out), decode_scale=decode_scale)
        target = f"the region {[int(v) if v.is_integer() else v for v in box]}"
    available = (ctx.index.manifest.get("counts") or {}).get("nodes_by_kind") or {}
    if available and not available.get(kind):
        hint = "give a region box to search damage crops" if box is None else "omit region to compare whole photos"
        raise ToolUnavailableError(f"The index holds no '{kind}' examples to compare {target} with; {hint}.")
    vector = ctx.index.embed(image)
    hits = ctx.index.search(
        vector=vector, k=k_used, label=chosen.key if chosen else None, kind=kind,
        exclude_images=ctx.excluded_images() or None, exclude_groups=ctx.exclude_groups or None,
        self_ids=ctx.query_photo_ids(),
    )
    arguments = {"region": box, "label": chosen.key if chosen else None, "k": k_used}
    data = {
        "arguments": arguments,
        "kind": kind,
        "query": query,
        "k_clamped": clamped,
        "ids": [h.id for h in hits],
        "scores": [h.similarity for h in hits],
        "hits": [h.to_dict() for h in hits],
        "query_photo": ctx.query_photo_data(),
    }
    filter_text = f" labelled {chosen.key}" if chosen else ""
    if not hits:
        advice = "search without the label filter or try get_label_examples" if chosen else "continue without examples"
        return ToolResult(text=f"No examples{filter_text} were found for {target}; {advice}.", data=data)
    lines, images, legend = present_examples(ctx, hits, with_similarity=True)
    head = (
        f"{len(hits)} examples{filter_text} most similar to {target}, best first"
        + (f" (k was limited to {k_used})" if clamped else "")
        + ". Their images are shown after the tool results, each under its caption. "
        + legend
    )
    return ToolResult(text="\n".join([head.strip(), *lines]), images=images, data=data)

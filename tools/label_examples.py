"""Tool: representative, diverse examples of one label."""

# No `from __future__ import annotations`: the signature is shown to the model as written.

import logging

import numpy as np

from tools.arguments import coerce_int, coerce_label
from tools.context import ToolContext
from tools.diversity import Candidate, select_diverse
from tools.examples import present_examples
from tools.recording import tool_function
from tools.results import ToolResult

logger = logging.getLogger(__name__)


def label_candidates(ctx: ToolContext, label_key: str, kind: str) -> list:
    """Nodes of ``kind`` showing ``label_key``, minus the excluded photos (the query photo's own
    included, see :meth:`ToolContext.excluded_images`) and vehicles, by id."""
    from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

    filters = [
        MetadataFilter(key="labels", value=label_key, operator=FilterOperator.CONTAINS),
        MetadataFilter(key="kind", value=kind),
    ]
    excluded = ctx.excluded_images()
    if excluded:
        filters.append(MetadataFilter(key="image_id", value=excluded, operator=FilterOperator.NIN))
    if ctx.exclude_groups:
        filters.append(MetadataFilter(key="vehicle_group", value=list(ctx.exclude_groups), operator=FilterOperator.NIN))
    nodes = ctx.index.store.get_nodes(filters=MetadataFilters(filters=filters))
    return sorted(nodes, key=lambda n: n.node_id)


def stored_vectors(ctx: ToolContext, node_ids: list[str]) -> np.ndarray | None:
    """The stored vectors of ``node_ids`` (one row each), or None if any is missing."""
    try:
        return np.stack([np.asarray(ctx.index.store.get_vector(i), dtype=np.float32) for i in node_ids])
    except (KeyError, AttributeError, ValueError) as exc:
        logger.warning("stored vectors unavailable (%s); choosing examples by zone and size only", exc)
        return None


@tool_function("get_label_examples")
def get_label_examples(ctx: ToolContext, label: str, k: int = 3) -> ToolResult:
    """Show typical reference examples of one damage type, chosen to differ from each other (other photos, zones and sizes).

    Use it to see what a label looks like in this dataset, or to compare two labels you hesitate between (call it once per label). The images, with the damage outlined in colour, are shown after the tool results, each under its caption.

    Args:
        label (string): the damage type as key, name, id or synonym in English or Spanish, e.g. "dent", "large_scratch" or "abolladura".
        k (int, optional): how many examples, 1-10 (default 3).
    """
    chosen = coerce_label(label, ctx.labels, required=True)
    assert chosen is not None
    k_used, clamped = coerce_int(k, "k")
    kind = ctx.agent.example_kind
    nodes = label_candidates(ctx, chosen.key, kind)
    data: dict = {"arguments": {"label": chosen.key, "k": k_used}, "kind": kind, "candidates": len(nodes),
                  "k_clamped": clamped, "query_photo": ctx.query_photo_data()}
    if not nodes:
        data.update(ids=[], hits=[])
        excluded = " outside the excluded photos" if ctx.excluded_images() or ctx.exclude_groups else ""
        return ToolResult(
            text=f"The reference set has no examples of {chosen.key}{excluded}; rely on get_label_definitions for it.",
            data=data,
        )
    ids = [n.node_id for n in nodes]
    candidates = [
        Candidate(n.node_id, n.metadata.get("image_id"), n.metadata.get("vehicle_group"),
                  n.metadata.get("zone"), float(n.metadata.get("area_fraction") or 0.0))
        for n in nodes
    ]
    picked = select_diverse(candidates, stored_vectors(ctx, ids), k_used)
    hits = ctx.index.get([ids[i] for i in picked], self_ids=ctx.query_photo_ids())
    data.update(ids=[h.id for h in hits], hits=[h.to_dict() for h in hits])
    lines, images, legend = present_examples(ctx, hits, with_similarity=False)
    head = (
        f"{len(hits)} of the {len(nodes)} examples of {chosen.key} ({chosen.name}) in the reference set, "
        "the most typical first, then the most different from it. Their images are shown after the tool "
        f"results, each under its caption. {legend}"
    )
    return ToolResult(text="\n".join([head.strip(), *lines]), images=images, data=data)

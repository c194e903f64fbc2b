"""Retrieval tools the vision-language agent calls before it answers.

Public API::

    ctx = ToolContext(index=DamageIndex.open(...), photo="query.jpg", model=cfg.model, agent=cfg.agent)
    tools = make_tools(ctx)                      # FunctionTools: schemas for the model
    result = run_tool(ctx, "zoom", {"region": [100, 200, 400, 500]})
    result.text, result.images, result.data, result.error
    ctx.examples_used, ctx.calls, ctx.trace()

Tools: ``search_similar_damage``, ``get_label_examples``, ``get_label_definitions``, ``zoom``.
"""

from index.imaging.budget import fit_to_pixels, fitted_size
from index.imaging.query_photo import QueryPhoto
from tools.arguments import ArgumentError
from tools.boxes import BoxError, box_from_qwen, query_crop_box
from tools.context import ToolContext, ToolUnavailableError
from tools.definitions import get_label_definitions
from tools.label_examples import get_label_examples
from tools.registry import TOOL_NAMES, TOOLS, make_tools, run_tool, tool_description, tool_specs
from tools.results import ShownImage, ToolCallRecord, ToolResult
from tools.search_similar import search_similar_damage
from tools.zoom_tool import zoom

__all__ = [
    "TOOLS",
    "TOOL_NAMES",
    "ArgumentError",
    "BoxError",
    "QueryPhoto",
    "ShownImage",
    "ToolCallRecord",
    "ToolContext",
    "ToolResult",
    "ToolUnavailableError",
    "box_from_qwen",
    "fit_to_pixels",
    "fitted_size",
    "get_label_definitions",
    "get_label_examples",
    "make_tools",
    "query_crop_box",
    "run_tool",
    "search_similar_damage",
    "tool_description",
    "tool_specs",
    "zoom",
]

"""Tool objects and the call record: FunctionTool schemas, run_tool, the trace, message blocks."""

from __future__ import annotations

import asyncio
import io
import json

from PIL import Image

from tools import TOOL_NAMES, ToolResult, make_tools, run_tool


def test_make_tools_schemas_have_no_ctx_and_the_right_required_arguments(make_ctx, tools_photos):
    tools = make_tools(make_ctx(tools_photos[0]))
    assert [t.metadata.name for t in tools] == TOOL_NAMES == [
        "search_similar_damage", "get_label_examples", "get_label_definitions", "zoom"]
    specs = {t.metadata.name: t.metadata.to_openai_tool() for t in tools}
    json.dumps(specs)
    expected = {
        "search_similar_damage": ({"region", "label", "k"}, []),
        "get_label_examples": ({"label", "k"}, ["label"]),
        "get_label_definitions": ({"labels"}, []),
        "zoom": ({"region"}, ["region"]),
    }
    for name, (properties, required) in expected.items():
        function = specs[name]["function"]
        params = function["parameters"]
        assert set(params["properties"]) == properties and params.get("required", []) == required
        assert "ctx" not in json.dumps(params) and "ToolContext" not in function["description"]
        assert function["description"].startswith(f"{name}(") and len(function["description"]) <= 1024
        assert all(p.get("description") for p in params["properties"].values())
    region = specs["zoom"]["function"]["parameters"]["properties"]["region"]
    assert region["type"] == "array" and region["items"] == {"type": "integer"}
    assert "0-1000" in region["description"]


def test_function_tools_run_through_run_tool_and_carry_images(make_ctx, tools_photos):
    ctx = make_ctx(tools_photos[0])
    tools = {t.metadata.name: t for t in make_tools(ctx)}
    output = tools["search_similar_damage"].call(region="[100, 100, 600, 600]", k="2")
    assert not output.is_error and isinstance(output.raw_output, ToolResult)
    kinds = [type(b).__name__ for b in output.blocks]
    assert kinds == ["TextBlock", "ImageBlock", "ImageBlock"]
    assert output.blocks[0].text == output.raw_output.text
    bad = asyncio.run(tools["zoom"].acall(region=[1, 2]))
    assert bad.is_error and "not 4 numbers" in bad.content
    assert [c.tool for c in ctx.calls] == ["search_similar_damage", "zoom"]


def test_calls_and_examples_are_recorded_for_the_trace(make_ctx, tools_photos):
    ctx = make_ctx(tools_photos[0])
    a = run_tool(ctx, "search_similar_damage", {"region": [100, 100, 600, 600], "k": 2})
    b = run_tool(ctx, "get_label_examples", {"label": "dent", "k": 2})
    run_tool(ctx, "zoom", {"region": [0, 0, 10]})
    assert [c.tool for c in ctx.calls] == ["search_similar_damage", "get_label_examples", "zoom"]
    assert [c.error for c in ctx.calls] == [False, False, True]
    expected = list(dict.fromkeys(a.data["ids"] + b.data["ids"]))
    assert ctx.examples_used == expected
    assert ctx.calls[0].arguments == {"region": [100, 100, 600, 600], "k": 2}
    assert ctx.calls[0].data["ids"] == a.data["ids"] and ctx.calls[0].seconds >= 0
    trace = json.loads(json.dumps(ctx.trace()))
    assert trace["examples_used"] == expected and len(trace["calls"]) == 3
    # the same example shown again keeps its number
    again = run_tool(ctx, "search_similar_damage", {"region": [100, 100, 600, 600], "k": 2})
    assert again.text.splitlines()[1].startswith("Example 1 ·") and ctx.examples_used == expected


def test_user_message_blocks_interleave_captions_and_jpeg_images(make_ctx, tools_photos):
    result = run_tool(make_ctx(tools_photos[0]), "get_label_examples", {"label": "scratch", "k": 2})
    blocks = result.user_message_blocks()
    assert [type(b).__name__ for b in blocks] == ["TextBlock", "ImageBlock"] * 2
    assert blocks[0].text.strip() == result.images[0].caption and blocks[0].text.endswith("\n")
    decoded = Image.open(io.BytesIO(result.images[0].jpeg_bytes()))
    assert decoded.format == "JPEG" and decoded.size == result.images[0].image.size

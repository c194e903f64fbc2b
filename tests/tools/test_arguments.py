"""Bad tool arguments give actionable errors the model can act on, never exceptions."""

from __future__ import annotations

import pytest

from tools import (
    ToolResult,
    get_label_definitions,
    get_label_examples,
    run_tool,
    search_similar_damage,
    zoom,
)


@pytest.mark.parametrize(
    "name, arguments, expected",
    [
        ("search_similar_damage", {"label": "óxido"}, "valid labels are: scratch (1), dent (2)"),
        ("get_label_examples", {"label": "nonsense"}, 'e.g. label="scratch"'),
        ("get_label_examples", {}, "needs label"),
        ("get_label_definitions", {"labels": ["dent", "blah"]}, "'blah'"),
        ("zoom", {}, "needs region"),
        ("zoom", {"region": [1, 2, 3]}, "not 4 numbers"),
        ("zoom", {"region": "[10, 10, 5, 50]"}, "x2 must exceed x1"),
        ("zoom", {"region": [0, 0, 1200, 500]}, "outside 0-1000"),
        ("zoom", {"region": [0.1, 0.2, 0.5, 0.6]}, "looks like 0-1 fractions; multiply by 1000"),
        ("zoom", {"region": "the left door"}, "e.g. [250, 300, 600, 700]"),
        ("search_similar_damage", {"k": "three"}, "k must be a whole number from 1 to 10"),
        ("search_similar_damage", {"k": 2.5}, "k must be a whole number"),
        ("search_similar_damage", {"k": True}, "k must be a whole number"),
        ("get_label_examples", {"label": "dent", "zone": 5}, "does not take 'zone'; it accepts only: label, k"),
        ("crop_photo", {}, "the tools are: search_similar_damage, get_label_examples"),
        ("zoom", "{not json", "not valid JSON"),
        ("zoom", "[1, 2, 3, 4]", "JSON object"),
    ],
)
def test_bad_arguments_give_actionable_errors_not_exceptions(make_ctx, tools_photos, name, arguments, expected):
    ctx = make_ctx(tools_photos[0])
    result = run_tool(ctx, name, arguments)
    assert isinstance(result, ToolResult) and result.error
    assert expected in result.text, result.text
    assert ctx.calls[-1].error and ctx.calls[-1].tool == name
    assert not result.images and ctx.examples_used == []


def test_direct_calls_with_bad_arguments_do_not_raise(make_ctx, tools_photos):
    ctx = make_ctx(tools_photos[0])
    assert search_similar_damage(ctx, region=[5, 5], k=3).error
    assert get_label_examples(ctx, label="nope").error
    assert zoom(ctx, region=None).error
    assert get_label_definitions(ctx, labelz=["dent"]).error  # type: ignore[call-arg]
    assert len(ctx.calls) == 4 and all(call.error for call in ctx.calls)


def test_tools_needing_a_photo_say_so_without_one(make_ctx):
    ctx = make_ctx(None)
    for name, args in (("search_similar_damage", {}), ("zoom", {"region": [0, 0, 500, 500]})):
        result = run_tool(ctx, name, args)
        assert result.error and "No query photo" in result.text and "get_label_examples" in result.text
    assert not run_tool(ctx, "get_label_definitions", {}).error

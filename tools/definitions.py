"""Tool: the taxonomy's label definitions, with how to tell neighbouring labels apart."""

# No `from __future__ import annotations`: the signature is shown to the model as written.

from tools.arguments import coerce_labels
from tools.context import ToolContext
from tools.recording import tool_function
from tools.results import ToolResult


@tool_function("get_label_definitions")
def get_label_definitions(ctx: ToolContext, labels: list[str] | None = None) -> ToolResult:
    """Read what each damage label means and how to tell it from look-alike labels.

    Use it when unsure which label fits, or to get the exact label keys for your answer.

    Args:
        labels (list of strings, optional): the labels to define, e.g. ["scratch", "large_scratch"]; omit for all labels.
    """
    chosen = coerce_labels(labels, ctx.labels) or list(ctx.labels.labels)
    counts = (ctx.index.manifest.get("counts") or {}).get("regions_by_label") or {}
    lines, records = [], []
    for label in chosen:
        source = f"; annotators' term: {label.source_name}" if label.source_name else ""
        examples = f"; annotated examples: {counts.get(label.key, 0)}" if counts else ""
        definition = " ".join(label.definition.split())
        lines.append(f"{label.key} (id {label.id}; {label.name}{source}{examples}): {definition}")
        records.append({**label.brief(), "source_name": label.source_name, "definition": definition,
                        "examples": counts.get(label.key, 0)})
    head = f"Definitions of {len(chosen)} label(s); answer with the key (first word of each line):"
    return ToolResult(
        text="\n".join([head, *lines]),
        data={"arguments": {"labels": [label.key for label in chosen] if labels else None}, "labels": records},
    )

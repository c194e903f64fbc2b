"""Prompt templates live as files in ``prompts/`` and are rendered strictly.

Templates use ``$name`` placeholders (``string.Template``); rendering with a missing variable,
or a template file that does not exist, raises :class:`PromptError` naming it.
"""

from __future__ import annotations

import string
from pathlib import Path

from index.taxonomy import LabelTaxonomy


class PromptError(KeyError):
    """A prompt template is missing or a variable it needs was not given."""

    def __str__(self) -> str:
        return str(self.args[0])


class Prompts:
    """Loads and renders the templates of one prompts folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._cache: dict[str, str] = {}

    def template(self, name: str) -> str:
        """The raw text of ``<folder>/<name>.md``."""
        if name not in self._cache:
            path = self.folder / f"{name}.md"
            try:
                self._cache[name] = path.read_text(encoding="utf-8").strip()
            except OSError:
                raise PromptError(f"Prompt template {path} not found.") from None
        return self._cache[name]

    def render(self, name: str, **values: object) -> str:
        """Render a template; every ``$name`` in it must be given.

        Raises:
            PromptError: If the template is missing or a variable is not given.
        """
        try:
            return string.Template(self.template(name)).substitute({k: str(v) for k, v in values.items()})
        except KeyError as exc:
            raise PromptError(f"Prompt template '{name}' needs variable {exc.args[0]!r}.") from None
        except ValueError as exc:
            raise PromptError(f"Prompt template '{name}' is malformed: {exc}.") from None


def label_lines(taxonomy: LabelTaxonomy, with_definitions: bool = False) -> str:
    """One line per label: key, display name and the annotators' name (and the definition)."""
    lines = []
    for label in taxonomy.labels:
        source = f" ({label.source_name})" if label.source_name else ""
        line = f"- {label.key}: {label.name}{source}"
        if with_definitions:
            line += f". {label.definition}"
        lines.append(line)
    return "\n".join(lines)

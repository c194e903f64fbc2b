"""Prompt templates live as files in ``prompts/`` and are rendered strictly.

Templates use ``$name`` placeholders (``string.Template``); rendering with a missing variable,
or a template file that does not exist, raises :class:`PromptError` naming it. The templates
shipped with the package are found through ``importlib.resources`` (the ``prompts`` package),
so a checkout, an editable install and a wheel behave alike; ``agent.prompts_dir`` names a
folder of your own instead.
"""

from __future__ import annotations

import string
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from index.config import DomainConfig

from index.errors import DamageRagError
from index.taxonomy import LabelTaxonomy


class PromptError(DamageRagError, KeyError):
    """A prompt template is missing or a variable it needs was not given."""


def packaged_prompts() -> Traversable:
    """The folder of the templates shipped with the package."""
    return files("prompts")


class Prompts:
    """Loads and renders the templates of one prompts folder."""

    def __init__(self, folder: Path | Traversable) -> None:
        self.folder = folder
        self._cache: dict[str, str] = {}

    @classmethod
    def for_config(cls, config: DomainConfig) -> Prompts:
        """The templates of ``agent.prompts_dir``, or the packaged ones when it is not set.

        Raises:
            PromptError: If ``agent.prompts_dir`` is set but is not a folder.
        """
        folder = config.agent.prompts_dir
        if folder is None:
            return cls(packaged_prompts())
        if not Path(folder).is_dir():
            raise PromptError(f"Prompt folder {folder} (agent.prompts_dir) does not exist.")
        return cls(Path(folder))

    def files(self) -> dict[str, bytes]:
        """Every template of the folder by file name (for cache keys)."""
        return {item.name: item.read_bytes() for item in sorted(self.folder.iterdir(), key=lambda i: i.name)
                if item.name.endswith(".md")}

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

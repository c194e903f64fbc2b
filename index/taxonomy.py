"""The label taxonomy of a domain: ids, keys, display names, definitions and synonyms.

A label may be named by its dataset id ("1"), its key ("scratch"), its display name
("Scratch"), its name in the annotators' language ("Arañazo general") or any synonym
("rayones"). :meth:`LabelTaxonomy.resolve` turns any of these into the one :class:`Label`.
"""

from __future__ import annotations

import re
import unicodedata

from pydantic import BaseModel, ConfigDict, Field, model_validator

from index.errors import DamageRagError


class UnknownLabelError(DamageRagError, ValueError):
    """A label string that matches no label of the taxonomy."""


def normalise_label_text(text: str) -> str:
    """Fold a label string for matching: lower case, no accents, single spaces.

    Args:
        text: Any label string ("Arañazos", " rayón ", "Large_Scratch").

    Returns:
        The folded form ("aranazos", "rayon", "large scratch").
    """
    decomposed = unicodedata.normalize("NFKD", str(text))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[\s_\-]+", " ", stripped.casefold()).strip()


class Label(BaseModel):
    """One label of the taxonomy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="The label exactly as the annotation files write it (e.g. '1').")
    key: str = Field(
        description="Stable English key used in metadata, filters and reports (e.g. 'scratch').",
        pattern=r"^[a-z][a-z0-9_]*$",
    )
    name: str = Field(description="Display name in English (e.g. 'Scratch').")
    source_name: str | None = Field(
        default=None,
        description="The annotators' own name for the label, in their language (e.g. 'Arañazo general').",
    )
    definition: str = Field(
        description="What it looks like and how to tell it from its neighbours, written for a VLM."
    )
    synonyms: list[str] = Field(
        default_factory=list,
        description="Other words users or the model may use for this label, in any language.",
    )

    def names(self) -> list[str]:
        """Every string that names this label: id, key, name, source name and synonyms."""
        out = [self.id, self.key, self.name, *self.synonyms]
        if self.source_name:
            out.append(self.source_name)
        return out

    def brief(self) -> dict[str, str]:
        """The label as the plain record tools and reports carry: id, key, name."""
        return {"id": self.id, "key": self.key, "name": self.name}


class LabelTaxonomy(BaseModel):
    """The domain's labels, with lookup by any of their names."""

    model_config = ConfigDict(extra="forbid")

    labels: list[Label] = Field(min_length=1, description="The labels of the domain, in order.")

    @model_validator(mode="after")
    def _check_unique_names(self) -> LabelTaxonomy:
        seen: dict[str, str] = {}
        for label in self.labels:
            for name in label.names():
                folded = normalise_label_text(name)
                if not folded:
                    continue
                owner = seen.setdefault(folded, label.key)
                if owner != label.key:
                    raise ValueError(
                        f"taxonomy: the name '{name}' is used by both '{owner}' and '{label.key}'"
                    )
        return self

    def _lookup(self) -> dict[str, Label]:
        table: dict[str, Label] = {}
        for label in self.labels:
            for name in label.names():
                table[normalise_label_text(name)] = label
        return table

    def find(self, text: str | int | None) -> Label | None:
        """Return the label named by ``text`` (id, key, name or synonym), or None.

        Plural forms are tolerated: "rayones" finds "rayón" and "scratches" finds "scratch"
        when only the singular is listed.
        """
        if text is None:
            return None
        table = self._lookup()
        folded = normalise_label_text(str(text))
        if folded in table:
            return table[folded]
        for suffix in ("es", "s"):
            if folded.endswith(suffix) and folded[: -len(suffix)] in table:
                return table[folded[: -len(suffix)]]
        return None

    def resolve(self, text: str | int) -> Label:
        """Return the label named by ``text`` or raise :class:`UnknownLabelError`.

        The error message lists the valid keys, so a user or a model can correct itself.
        """
        label = self.find(text)
        if label is None:
            raise UnknownLabelError(
                f"Unknown label '{text}'; valid labels are: {', '.join(self.label_keys())} "
                "(ids, English or source-language names and synonyms are accepted too)."
            )
        return label

    def mentions(self, text: str) -> list[Label]:
        """Labels named anywhere in a sentence ("¿Tiene rayones en el capó?" → scratch).

        Longer names win over their parts ("arañazo grande" is a large scratch, not a scratch).
        """
        cleaned = re.sub(r"[^\w\s-]", " ", text)
        folded = " " + normalise_label_text(cleaned) + " "
        found: list[tuple[int, Label]] = []
        names = sorted(((normalise_label_text(n), label) for label in self.labels for n in label.names()),
                       key=lambda item: -len(item[0]))
        for name, label in names:
            if len(name) < 3 or name.isdigit():
                continue
            match = re.search(rf"(?<=\s){re.escape(name)}(?:es|s)?(?=\s)", folded)
            if match:
                folded = folded[: match.start()] + " " * (match.end() - match.start()) + folded[match.end():]
                if label not in [f[1] for f in found]:
                    found.append((match.start(), label))
        return [label for _, label in sorted(found, key=lambda f: f[0])]

    def by_id(self, label_id: str) -> Label | None:
        """The label whose dataset id is exactly ``label_id`` (no synonym matching)."""
        for label in self.labels:
            if label.id == str(label_id):
                return label
        return None

    def label_keys(self) -> list[str]:
        """The label keys in taxonomy order."""
        return [label.key for label in self.labels]

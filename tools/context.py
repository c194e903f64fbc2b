"""Everything a tool call needs, bound once per question: index, photo, configs, exclusions, record."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

from index.config import AgentConfig, ModelConfig, RegionStrategy
from index.errors import DamageRagError
from index.imaging.drawing import label_colour
from index.imaging.query_photo import PhotoSource, QueryPhoto
from index.taxonomy import LabelTaxonomy
from tools.results import ToolCallRecord

if TYPE_CHECKING:
    from index.search import DamageIndex

logger = logging.getLogger(__name__)


class ToolUnavailableError(DamageRagError, RuntimeError):
    """A tool that cannot run in this context (e.g. no query photo); the message says what to do."""


@dataclass
class ToolContext:
    """The state the tools share during one question.

    Attributes:
        index: The opened :class:`index.search.DamageIndex`.
        photo: The query photo (a path, bytes or PIL image is wrapped in :class:`QueryPhoto`);
            None when the question has no photo.
        taxonomy: The label taxonomy (default: the index's own).
        model: Pixel budgets of the images shown to the model.
        agent: ``k`` (default examples per search), ``example_kind`` (node kind searched) and
            ``exclude_query_photo`` (leave out the query photo's own examples when it is one of
            the indexed photos: :meth:`query_photo_ids`).
        exclude_images: Image ids never returned (the query's own photo, in evaluation).
        exclude_groups: Vehicle groups never returned (the query's own vehicle).
        examples_used: Ids of the examples shown to the model, in order, each once.
        calls: Every tool call, in order, for the trace.
    """

    index: DamageIndex
    photo: QueryPhoto | PhotoSource | None = None
    taxonomy: LabelTaxonomy | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    exclude_images: list[str] = field(default_factory=list)
    exclude_groups: list[str] = field(default_factory=list)
    examples_used: list[str] = field(default_factory=list)
    calls: list[ToolCallRecord] = field(default_factory=list)
    _identity: QueryPhoto | PhotoSource | None = field(default=None, init=False, repr=False)
    _photo_ids: list[str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._identity = self.photo  # as given: a PIL image keeps the file name it was opened from
        if self.photo is not None and not isinstance(self.photo, QueryPhoto):
            self.photo = QueryPhoto(self.photo)
        if self.taxonomy is None:
            self.taxonomy = self.index.taxonomy
        self.exclude_images = list(self.exclude_images or [])
        self.exclude_groups = list(self.exclude_groups or [])

    # ------------------------------------------------------------------ configuration
    @property
    def strategy(self) -> RegionStrategy:
        """The region strategy the index was built with (margins, square crops, crop size)."""
        return self.index.strategy

    @property
    def labels(self) -> LabelTaxonomy:
        """The taxonomy (never None after construction)."""
        assert self.taxonomy is not None
        return self.taxonomy

    def colour_of(self, label_key: str | None) -> tuple[int, int, int]:
        """The outline colour of a label (its position in the taxonomy picks the palette entry)."""
        keys = self.labels.label_keys()
        return label_colour(keys.index(label_key) if label_key in keys else len(keys))

    # ------------------------------------------------------------------ the query photo
    def require_photo(self) -> QueryPhoto:
        """The query photo, or :class:`ToolUnavailableError` telling the model what to do instead."""
        if not isinstance(self.photo, QueryPhoto):
            raise ToolUnavailableError(
                "No query photo is attached to this question, so there is nothing to search or zoom "
                "into; use get_label_examples or get_label_definitions instead."
            )
        return self.photo

    def query_image(self) -> Image.Image:
        """The query photo as sent to the model: downscaled to ``model.query_max_pixels``."""
        return self.require_photo().view(max_pixels=self.model.query_max_pixels)

    def query_photo_ids(self) -> list[str]:
        """Image ids of the indexed photos that are the query photo itself (same file or same
        bytes, :meth:`index.search.DamageIndex.image_ids_of`); found once per question."""
        if self._photo_ids is None:
            self._photo_ids = self.index.image_ids_of(self._identity) if self._identity is not None else []
            if self._photo_ids:
                logger.info("the query photo is in the index as %s%s", ", ".join(self._photo_ids),
                            "; its examples are excluded" if self.agent.exclude_query_photo else "")
        return self._photo_ids

    def excluded_images(self) -> list[str]:
        """The image ids searches leave out: ``exclude_images``, plus the query photo's own
        (:meth:`query_photo_ids`) when ``agent.exclude_query_photo`` is on."""
        own = self.query_photo_ids() if self.agent.exclude_query_photo else []
        return list(dict.fromkeys([*self.exclude_images, *own]))

    def query_photo_data(self) -> dict[str, Any] | None:
        """For a tool result's ``data``: whether the query photo is one of the indexed photos
        (``in_index``, its ``image_ids``) and whether their examples were ``excluded``; None
        without a query photo."""
        if self._identity is None:
            return None
        ids = self.query_photo_ids()
        return {"in_index": bool(ids), "image_ids": list(ids), "excluded": bool(ids) and self.agent.exclude_query_photo}

    # ------------------------------------------------------------------ the record
    def use_examples(self, node_ids: list[str]) -> list[int]:
        """Record examples shown to the model; returns their numbers (1-based, stable per question)."""
        numbers = []
        for node_id in node_ids:
            if node_id not in self.examples_used:
                self.examples_used.append(node_id)
            numbers.append(self.examples_used.index(node_id) + 1)
        return numbers

    def record(self, call: ToolCallRecord) -> None:
        """Append one tool call to the record."""
        self.calls.append(call)
        logger.info("tool %s(%s) -> %s%s", call.tool, call.arguments, "error: " if call.error else "",
                    call.text.splitlines()[0][:160] if call.text else "")

    def trace(self) -> dict[str, Any]:
        """JSON-ready record of the tools used: calls in order and the examples shown."""
        return {
            "examples_used": list(self.examples_used),
            "calls": [c.to_dict() for c in self.calls],
            "exclude_images": list(self.exclude_images),
            "exclude_groups": list(self.exclude_groups),
            "query_photo": self.query_photo_data(),
        }

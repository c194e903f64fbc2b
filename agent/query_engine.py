"""The engine as a LlamaIndex query engine: ``engine.as_query_engine()``.

:class:`DamageQueryEngineView` is a ``llama_index.core.base.base_query_engine.BaseQueryEngine``,
so the engine drops into a LlamaIndex app, a ``QueryEngineTool`` or LlamaIndex's evaluators::

    from llama_index.core.schema import QueryBundle

    qe = engine.as_query_engine()
    response = qe.query(QueryBundle(query_str="¿Tiene rayones en el capó?", image_path="photo.jpg"))
    response.response                     # the answer, in the question's language
    response.source_nodes                 # the examples shown to the model: ImageNodes with scores
    response.metadata["report"]           # the full DamageReport

Which photo a query is about, first match wins:

1. ``QueryBundle.image_path``;
2. the ``default_image`` the view was made with (``engine.as_query_engine(default_image=...)``:
   a tool about one photo, e.g. the photo a chat is about);
3. a photo path at the start of the query text, ``"<path>: <question>"`` or the path alone
   (the question is then ``default_question``). The path is everything up to the first image
   suffix (``.jpg``, ``.jpeg``, ``.png``, ``.webp``, ``.bmp``, ``.tif``, ``.tiff``), so a
   Windows drive or a colon in the question is no problem. This is the form a
   ``QueryEngineTool`` passes: one string, from the model calling the tool.

A query with none of them raises :class:`MissingPhotoError`. ``engine.query(image, question)``
is unchanged; this view calls it (``aquery`` calls ``engine.aquery``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.base.base_query_engine import BaseQueryEngine
from llama_index.core.base.response.schema import Response
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.schema import ImageNode, NodeWithScore, QueryBundle

from index.errors import UserError

if TYPE_CHECKING:
    from agent.engine import DamageQueryEngine
    from agent.report import DamageReport
    from tools.context import ToolContext

__all__ = ["DEFAULT_QUESTION", "DamageQueryEngineView", "MissingPhotoError", "parse_query_text", "shown_examples"]

logger = logging.getLogger(__name__)

#: The keywords of ``engine.aquery`` a view passes on with every query.
_PASSED_ON = frozenset({"exclude_images", "exclude_groups", "on_event"})
#: The question of a query that names a photo and nothing else.
DEFAULT_QUESTION = "What damage, if any, is visible in this photo?"

_PHOTO_FIRST = re.compile(
    r"^\s*(?P<quote>['\"]?)(?P<path>[^\n]*?\.(?:jpe?g|png|webp|bmp|tiff?))(?P=quote)(?=\s*(?::|$))\s*(?::\s*(?P<question>.*))?$",
    re.IGNORECASE | re.DOTALL)


class MissingPhotoError(UserError):
    """A query to the view names no photo; the message says the three ways to give one."""


def parse_query_text(text: str) -> tuple[str | None, str]:
    """Split ``"<photo path>: <question>"`` (or a photo path alone) into (path, question).

    The path may be quoted; it ends at the first image suffix followed by ``:`` or the end.
    Returns ``(None, text)`` when the text does not start with a photo path; the question is
    ``""`` when only a path is given.
    """
    match = _PHOTO_FIRST.match(text or "")
    if match is None:
        return None, (text or "").strip()
    return match.group("path").strip(), (match.group("question") or "").strip()


def shown_examples(ctx: ToolContext) -> list[NodeWithScore]:
    """The examples shown to the model during a question, as ``NodeWithScore`` of ``ImageNode``.

    In ``ctx.examples_used`` order (the report's ``examples_used``); each node is the index's
    own node (id, description text, metadata) with ``image_path`` its stored crop inside the
    index directory (None when it has none). The score is the highest similarity a
    ``search_similar_damage`` call gave the example; None for one only shown by label
    (``get_label_examples``, which ranks by typicality, not by similarity to the photo).
    """
    hits: dict[str, dict[str, Any]] = {}
    scores: dict[str, float] = {}
    for call in ctx.calls:
        for hit in call.data.get("hits") or []:
            hits.setdefault(hit["id"], hit)
            if call.tool == "search_similar_damage":
                scores[hit["id"]] = max(scores.get(hit["id"], float("-inf")), float(hit["similarity"]))
    ids = list(ctx.examples_used)
    stored = {node.node_id: node for node in ctx.index.store.get_nodes(ids)} if ids else {}
    out = []
    for node_id in ids:
        hit = hits.get(node_id, {})
        node = stored.get(node_id)
        if node is None:
            logger.warning("example %s is no longer in the index; left out of the source nodes", node_id)
            continue
        image = ImageNode(id_=node_id, text=node.get_content(), image_path=hit.get("crop_path") or None,
                          metadata=dict(node.metadata),
                          excluded_embed_metadata_keys=list(node.excluded_embed_metadata_keys),
                          excluded_llm_metadata_keys=list(node.excluded_llm_metadata_keys))
        out.append(NodeWithScore(node=image, score=scores.get(node_id)))
    return out


class DamageQueryEngineView(BaseQueryEngine):
    """A :class:`agent.engine.DamageQueryEngine` as a LlamaIndex ``BaseQueryEngine``.

    ``query`` / ``aquery`` take a ``QueryBundle`` (``query_str``: the question; ``image_path``:
    the photo) or a string, and return a ``Response``: ``response`` is the report's answer (or,
    for an answer that stayed invalid, a sentence saying so), ``source_nodes`` the examples
    shown to the model (:func:`shown_examples`; ids = ``report.examples_used``) and
    ``metadata`` ``{"report": DamageReport, "trace_id": ...}``. See the module docstring for
    how the photo is found.

    In a ``QueryEngineTool`` (which passes the model's one string): give ``default_image`` for
    a tool about one photo, or let the string be ``"<path>: <question>"`` and say so in the
    tool's description.

    Args:
        engine: The engine answering.
        default_image: The photo of a query that names none (path, PIL image or bytes).
        mode: ``agentic``, ``rag`` or ``zero-shot`` (default: the engine config's).
        default_question: The question of a query that is only a photo path.
        callback_manager: LlamaIndex's legacy callbacks (instrumentation needs none).
        query_kwargs: Passed on to ``engine.aquery`` (``exclude_images``, ``exclude_groups``,
            ``on_event``).
    """

    def __init__(self, engine: DamageQueryEngine, *, default_image: Any = None, mode: str | None = None,
                 default_question: str | None = None, callback_manager: CallbackManager | None = None,
                 **query_kwargs: Any) -> None:
        unknown = sorted(set(query_kwargs) - _PASSED_ON)
        if unknown:
            raise TypeError(f"as_query_engine() does not take {', '.join(unknown)}; it passes on only "
                            f"{', '.join(sorted(_PASSED_ON))}.")
        super().__init__(callback_manager=callback_manager)
        self.engine = engine
        self.default_image = default_image
        self.mode = mode
        self.default_question = default_question or DEFAULT_QUESTION
        self.query_kwargs = query_kwargs

    def _get_prompt_modules(self) -> dict[str, Any]:
        """No prompt sub-modules: the engine's prompts are its templates (``agent.prompts``)."""
        return {}

    def _photo_and_question(self, query_bundle: QueryBundle) -> tuple[Any, str]:
        """The photo and the question of a query (see the module docstring)."""
        text = query_bundle.query_str or ""
        if query_bundle.image_path:
            return query_bundle.image_path, text.strip() or self.default_question
        if self.default_image is not None:
            return self.default_image, text.strip() or self.default_question
        path, question = parse_query_text(text)
        if path is None:
            raise MissingPhotoError(
                "The query names no photo: set QueryBundle.image_path, make the view with "
                "engine.as_query_engine(default_image=...), or write the query as '<photo path>: <question>'.")
        if not Path(path).expanduser().is_file():
            raise MissingPhotoError(f"The query's photo {path} is not a file.")
        return str(Path(path).expanduser()), question or self.default_question

    def _response(self, report: DamageReport, sources: list[NodeWithScore]) -> Response:
        text = report.answer if report.valid else f"The model gave no valid answer ({report.error})."
        return Response(response=text, source_nodes=sources, metadata={"report": report, "trace_id": report.trace_id})

    def _query(self, query_bundle: QueryBundle) -> Response:
        """Answer on the engine's loop thread (a dispatcher span; the engine's spans are inside)."""
        image, question = self._photo_and_question(query_bundle)
        sources: list[NodeWithScore] = []
        report = self.engine.query(image, question, mode=self.mode, sources=sources, **self.query_kwargs)
        return self._response(report, sources)

    async def _aquery(self, query_bundle: QueryBundle) -> Response:
        """Answer on the caller's event loop (``engine.aquery``)."""
        image, question = self._photo_and_question(query_bundle)
        sources: list[NodeWithScore] = []
        report = await self.engine.aquery(image, question, mode=self.mode, sources=sources, **self.query_kwargs)
        return self._response(report, sources)

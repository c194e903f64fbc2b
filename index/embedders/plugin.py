"""Your own embedder class: ``embedder.family: package.module:Class``.

The module is imported by name (install it, or put it on ``PYTHONPATH``) and the class is
constructed with the :class:`~index.embedders.config.EmbedderConfig`, whose ``model``,
``device``, ``batch_size`` and so on it may read. It needs nothing from this package and
provides the protocol the built-in embedders do::

    class MyEmbedder:
        def __init__(self, config: EmbedderConfig) -> None:
            ...  # load the model named config.model

        @property
        def info(self) -> EmbedderInfo:  # or any object with these four attributes
            # dim: the native output dimension; fingerprint: a string that changes whenever
            # the vectors would (other weights, other preprocessing), e.g. a hash of both.
            return EmbedderInfo(model_id=..., family="mine", dim=512, fingerprint=...)

        def embed_images(self, images: list[PIL.Image.Image]) -> np.ndarray:
            ...  # (len(images), dim) vectors; they need not be normalised

        def embed_texts(self, texts: list[str]) -> np.ndarray:  # optional
            ...  # (len(texts), dim), in the same space as the images

It is wrapped in a :class:`~index.embedders.base.VisualEmbedder`, like every built-in one:
``embed_images`` receives upright RGB PIL images at most ``batch_size`` at a time (paths and
file objects are decoded first), the shape is checked, ``dim`` truncation applies and the rows
are L2-normalised. The embedder reports family ``package.module:Class``; its fingerprint hashes
the class's own ``info``, so an index built with it is refused by another model.

A subclass of :class:`~index.embedders.local.LocalEmbedder` (say, another transformers model
family; implement ``_setup``, ``_encode_images``, ``_encode_texts``) is constructed like the
built-in ones instead and loaded from the directory ``embedder.model`` names.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from PIL import Image

from index.embedders.base import VisualEmbedder
from index.embedders.config import EmbedderConfig, EmbedderError

logger = logging.getLogger(__name__)


def import_embedder_class(spec: str) -> type:
    """The class ``spec`` ('package.module:Class') names.

    Raises:
        EmbedderError: If the module is missing or broken, or has no such attribute.
    """
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise EmbedderError(
                f"Unknown embedder family '{spec}': there is no module {module_name}; install "
                "the package that holds it or put it on PYTHONPATH."
            ) from None
        raise EmbedderError(
            f"The embedder module {module_name} of family '{spec}' cannot be imported ({exc})."
        ) from exc
    except Exception as exc:  # a broken user module: say so, not "unknown family"
        raise EmbedderError(
            f"The embedder module {module_name} of family '{spec}' cannot be imported "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    cls = getattr(module, attr, None)
    if cls is None:
        raise EmbedderError(
            f"Unknown embedder family '{spec}': {module_name} has no '{attr}' (give "
            "'package.module:Class')."
        )
    if not isinstance(cls, type):
        raise EmbedderError(f"Embedder family '{spec}' names {cls!r}, which is not a class.")
    return cls


def _not_an_embedder(spec: str, missing: str) -> str:
    return (
        f"Embedder family '{spec}' is not an embedder class: it has no {missing}; it must take "
        "the EmbedderConfig when constructed and provide info and embed_images (and optionally "
        "embed_texts); see index/embedders/plugin.py."
    )


class PluginEmbedder(VisualEmbedder):
    """A user class with the embedder protocol (see the module docstring), wrapped."""

    _impl: Any = PrivateAttr(default=None)
    _native: int = PrivateAttr(default=0)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def class_name(cls) -> str:
        return "PluginEmbedder"

    def load(self, cls: type) -> None:
        """Construct ``cls`` with the configuration and read its ``info``.

        Raises:
            EmbedderError: If construction fails or ``info`` has no usable dim / fingerprint.
        """
        cfg = self.embedder_config
        try:
            impl = cls(cfg)
            if not hasattr(impl, "info"):
                raise EmbedderError(_not_an_embedder(self.family, "info"))
            info = impl.info
        except EmbedderError:
            raise
        except Exception as exc:
            raise EmbedderError(
                f"Could not load embedder '{cfg.model}' with family '{self.family}': "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        dim, print_ = getattr(info, "dim", None), getattr(info, "fingerprint", None)
        if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
            raise EmbedderError(
                f"Embedder family '{self.family}': info.dim must be a positive int, got {dim!r}."
            )
        if not isinstance(print_, str) or not print_:
            raise EmbedderError(
                f"Embedder family '{self.family}': info.fingerprint must be a non-empty string "
                "that changes when the model or its preprocessing does."
            )
        if cfg.dim is not None and cfg.dim > dim:
            raise EmbedderError(
                f"Could not load embedder '{cfg.model}': dim={cfg.dim} exceeds its native "
                f"dimension {dim}; use a dim of at most {dim}."
            )
        self._impl, self._native = impl, dim
        self._fingerprint_parts = {
            "plugin": {
                "model_id": str(getattr(info, "model_id", "")),
                "family": str(getattr(info, "family", "")),
                "dim": dim,
                "fingerprint": print_,
            }
        }
        logger.info("Loaded embedder %s from %s (%d-d)", cfg.model, self.family, dim)

    def _native_dim(self) -> int:
        return self._native

    def _run(self, items: list[Any], encode: Any) -> np.ndarray:
        with self._lock:  # a user model need not be thread-safe
            return super()._run(items, encode)

    def _encode_images(self, images: list[Image.Image]) -> np.ndarray:
        return np.asarray(self._impl.embed_images(images))

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        method = getattr(self._impl, "embed_texts", None)
        if method is None:
            raise EmbedderError(
                f"Embedder family '{self.family}' has no embed_texts, so it cannot embed text."
            )
        return np.asarray(method(texts))


def load_plugin(cfg: EmbedderConfig, common: dict[str, Any]) -> VisualEmbedder:
    """Load the user embedder class ``cfg.family`` names.

    Args:
        cfg: The configuration; ``family`` is 'package.module:Class'.
        common: The keyword arguments every embedder is constructed with.

    Returns:
        The ready embedder.

    Raises:
        EmbedderError: If the class cannot be found, does not provide the protocol, or fails.
    """
    from index.embedders.local import LocalEmbedder

    spec = cfg.family
    cls = import_embedder_class(spec)
    if issubclass(cls, LocalEmbedder):
        from index.embedders.loading import resolve_model_dir

        local = cls(family=spec, **common)
        local.load(resolve_model_dir(cfg.model))
        return local
    if issubclass(cls, VisualEmbedder):
        raise EmbedderError(
            f"Embedder family '{spec}' subclasses VisualEmbedder but not LocalEmbedder; subclass "
            "LocalEmbedder (loaded from the model directory), or write a plain class with info "
            "and embed_images; see index/embedders/plugin.py."
        )
    if not callable(getattr(cls, "embed_images", None)):
        raise EmbedderError(_not_an_embedder(spec, "embed_images"))
    embedder = PluginEmbedder(family=spec, **common)
    embedder.load(cls)
    return embedder

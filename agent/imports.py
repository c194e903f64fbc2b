"""Heavy libraries the online side imports from several threads at once, safely.

:func:`import_once` (from :mod:`index.imports`, shared with the build) imports LlamaIndex and the
model client one thread at a time; :func:`settled_import` waits for a module another thread is
still importing (``httpx2``, which the openai client peeks at).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

from index.imports import LLAMA_INDEX, import_once

__all__ = ["LLAMA_INDEX", "MODEL_CLIENT", "import_once", "settle_httpx2", "settled_import"]

#: The model client: OpenAILike and the openai client's chat resources (imported on first use).
MODEL_CLIENT = (*LLAMA_INDEX, "llama_index.llms.openai_like", "openai.resources.chat")


def settle_httpx2() -> None:
    """Make sure ``httpx2``, when installed, is wholly imported before an openai client is made.

    The openai client peeks at ``sys.modules["httpx2"]`` (``openai._httpx2``) without importing
    it, while huggingface_hub imports httpx2 in the index-loading thread: a client made in
    between finds the half-imported module (``AttributeError: partially initialized module
    'httpx2' has no attribute 'URL'``). An import here waits for another thread's import of the
    same module to finish (or does it, ~25 ms).
    """
    settled_import("httpx2")


def settled_import(name: str) -> bool:
    """Import ``name`` if it is installed, waiting for another thread's import of it to finish;
    whether it is installed."""
    if name not in sys.modules and importlib.util.find_spec(name) is None:
        return False
    importlib.import_module(name)  # a module still initialising in another thread: waits on its lock
    return True

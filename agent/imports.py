"""Heavy libraries imported from several threads at once, safely.

The engine imports LlamaIndex in a background thread (the index and its embedder,
:mod:`agent.index_loading`; the model client, :func:`agent.llm.preload_client`) while the query
thread imports it too. ``llama_index.core`` imports itself in a circle, and two threads importing
such a package at the same time can each find the other's half-initialised module
(``ImportError: cannot import name ... from partially initialized module``, ``KeyError:
'llama_index.core'``). So the first import of each of these libraries goes through
:func:`import_once`, under one process-wide lock; afterwards it costs a set lookup.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading

__all__ = ["LLAMA_INDEX", "MODEL_CLIENT", "import_once", "settle_httpx2", "settled_import"]

#: What every use of LlamaIndex needs first (it imports nearly all of ``llama_index.core``).
LLAMA_INDEX = ("llama_index.core",)
#: The model client: OpenAILike and the openai client's chat resources (imported on first use).
MODEL_CLIENT = (*LLAMA_INDEX, "llama_index.llms.openai_like", "openai.resources.chat")

_lock = threading.Lock()
_imported: set[str] = set()


def import_once(modules: tuple[str, ...]) -> None:
    """Import ``modules`` (in order) unless this function has already imported them, one thread
    at a time: a thread that arrives while another imports them waits for the whole import."""
    if _imported.issuperset(modules):
        return
    with _lock:
        for name in modules:
            if name not in _imported:
                importlib.import_module(name)
                _imported.add(name)


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

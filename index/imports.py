"""Libraries imported from several threads at once, safely.

A build imports LlamaIndex in its main thread (for the store) while the model loader's thread
loads the embedder, and a query imports it while the index loads in the background
(:mod:`agent.index_loading`). ``llama_index.core`` imports itself in a circle, and two threads
importing such a package at the same time can each find the other's half-initialised module
(``ImportError: cannot import name ... from partially initialized module``, ``KeyError:
'llama_index.core'``). So the first import of each of these libraries goes through
:func:`import_once`, under one process-wide lock; afterwards it costs a set lookup.
"""

from __future__ import annotations

import importlib
import threading

__all__ = ["LLAMA_INDEX", "import_once"]

#: What every use of LlamaIndex needs first (it imports nearly all of ``llama_index.core``).
LLAMA_INDEX = ("llama_index.core",)

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

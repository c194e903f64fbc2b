"""agent.imports: a module another thread is still importing is waited for, not seen half-made
(openai's client peeks at ``sys.modules["httpx2"]`` while the index-loading thread imports it)."""

from __future__ import annotations

import sys
import threading
import time

from agent.imports import settled_import


def test_a_module_half_imported_by_another_thread_is_waited_for(tmp_path, monkeypatch):
    (tmp_path / "slow_httpx_like.py").write_text("import time\ntime.sleep(0.5)\nURL = 'done'\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    importer = threading.Thread(target=__import__, args=("slow_httpx_like",))
    importer.start()
    try:
        deadline = time.monotonic() + 10
        while "slow_httpx_like" not in sys.modules and time.monotonic() < deadline:
            time.sleep(0.005)
        half_made = sys.modules["slow_httpx_like"]
        assert not hasattr(half_made, "URL")  # what openai's peek would have found
        assert settled_import("slow_httpx_like") is True
        assert sys.modules["slow_httpx_like"].URL == "done"
    finally:
        importer.join()
        sys.modules.pop("slow_httpx_like", None)


def test_a_module_that_is_not_installed_is_not_an_error():
    assert settled_import("no_such_module_anywhere_42") is False

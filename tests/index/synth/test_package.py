"""The package ``index.synth`` re-exports its public API and stays light to import."""

from __future__ import annotations

import subprocess
import sys

import index.synth


def test_all_names_are_exported() -> None:
    assert len(set(index.synth.__all__)) == len(index.synth.__all__)
    assert {"synthesize_labelme", "synthesize_coco", "parse_size"} <= set(index.synth.__all__)
    for name in index.synth.__all__:
        assert getattr(index.synth, name) is not None


def test_import_pulls_in_no_heavy_library() -> None:
    heavy = ("torch", "transformers", "matplotlib", "llama_index")
    code = ("import sys, index.synth; "
            f"print(','.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""

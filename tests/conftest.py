"""Test configuration: no network, and the shared fixtures as plugins (tests/fixtures/)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = [
    "tests.fixtures.datasets",
    "tests.fixtures.embedders",
    "tests.fixtures.models",
    "tests.fixtures.indexes",
    "tests.fixtures.tools",
    "tests.fixtures.vector_store",
]

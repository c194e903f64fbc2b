"""The shared store tests (filters, ids, writes, accessors) rerun on the Qdrant backend.

Every ``test_*`` of the modules below is collected here again, with ``flat_store`` and every
``FaissNodeStore(...)`` those tests construct replaced by a QdrantNodeStore in qdrant-client's
in-memory local mode, so the two backends pass the same cases. Left out: the cases that read
FAISS internals (``store.client.ntotal``, FAISS id maps, the ivf type); their Qdrant
counterparts are in ``test_qdrant_store.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.fixtures.vector_store import qdrant_memory_store
from tests.index.vector_store import test_filters, test_ids_and_writes

pytest.importorskip("qdrant_client")

SHARED = (test_filters, test_ids_and_writes)
FAISS_ONLY = {
    # 300 random filters: ~30 s in local mode, which evaluates payload filters in Python; its
    # agreement with the FAISS store is checked on 80 of them in test_qdrant_filters.py
    "test_filtered_top_k_equals_brute_force",
    "test_upsert_replaces_vector_and_metadata",  # store.client.ntotal
    "test_delete_then_add_never_collides_with_live_ids",  # FAISS id map, ivf
    "test_text_and_image_nodes_never_collide",  # FAISS id map
    "test_delete_by_ref_doc_delete_nodes_by_filter_and_clear",  # store.client.ntotal
}
RERUN = [name for module in SHARED for name in vars(module) if name.startswith("test_") and name not in FAISS_ONLY]
for _module in SHARED:
    for _name, _case in vars(_module).items():
        if _name in RERUN:
            globals()[_name] = _case


def test_the_rerun_covers_the_shared_cases_on_qdrant(flat_store: Any) -> None:
    from index.vector_store import QdrantNodeStore

    assert len(RERUN) >= 13 and "test_other_operators_and_missing_key_semantics" in RERUN
    assert isinstance(flat_store, QdrantNodeStore)
    assert isinstance(test_filters.FaissNodeStore(), QdrantNodeStore)  # the cases' own stores


@pytest.fixture(autouse=True)
def _qdrant_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shared cases' own ``FaissNodeStore(...)`` calls build Qdrant stores here."""
    for module in SHARED:
        monkeypatch.setattr(module, "FaissNodeStore", qdrant_memory_store)


@pytest.fixture
def flat_store(store_data: tuple[np.ndarray, list[Any]]) -> Any:
    """The shared cases' flat store, on Qdrant."""
    store = qdrant_memory_store()
    store.add(store_data[1])
    return store

"""The offline side of damage-rag: a labelled dataset becomes a searchable FAISS index.

dataset (``index.dataset``) -> regions (``index.regions``) -> embeddings (``index.embedders``)
-> index (``index.vector_store``, built by ``index.build``, searched through
``index.search.DamageIndex``). ``python -m index`` is its command line (``index.cli``).
"""

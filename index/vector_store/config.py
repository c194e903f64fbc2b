"""Configuration of the vector index (kept free of heavy imports).

:class:`VectorIndexConfig` is re-exported by :mod:`index.vector_store`, whose import loads only
this module, so that validating a domain configuration does not have to import LlamaIndex,
FAISS or qdrant-client. ``backend`` picks the store: ``faiss`` (embedded, the default) or
``qdrant`` (:class:`QdrantConfig`: qdrant-client's local mode or a Qdrant server / cluster).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

IndexType = Literal["flat", "hnsw", "ivf"]
Backend = Literal["faiss", "qdrant"]


class QdrantConfig(BaseModel):
    """Where the ``qdrant`` backend keeps its vectors: a local folder or a Qdrant server."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        default=None,
        description="qdrant-client's local mode: a folder it keeps the collection in (exact "
        "brute-force search, one process at a time). Give path or url, not both.",
    )
    url: str | None = Field(
        default=None,
        description="A Qdrant server or cluster, e.g. http://localhost:6333 (several query "
        "servers can share it). Give path or url, not both.",
    )
    url_env: str | None = Field(
        default=None,
        description="Name of an environment variable that, when set, replaces url (query "
        "servers that reach the same Qdrant under another address).",
    )
    api_key_env: str = Field(
        default="QDRANT_API_KEY",
        description="Name of the environment variable holding the server's API key (unset: "
        "no key). The key itself never enters a configuration or a manifest.",
    )
    collection: str = Field(
        default="damage_rag",
        pattern=r"^[A-Za-z0-9_-]{1,200}$",
        description="Collection name. A build writes a new collection <collection>-<time> and "
        "the index directory names the one it holds; the alias <collection> follows the "
        "latest build.",
    )
    timeout_s: int = Field(default=30, ge=1, description="Seconds per request to a server.")

    @model_validator(mode="after")
    def _one_location(self) -> QdrantConfig:
        if self.path is not None and self.url is not None:
            raise ValueError("give index.qdrant.path (local mode) or index.qdrant.url (a server), not both")
        return self


class VectorIndexConfig(BaseModel):
    """Where the vector index lives and which FAISS structure backs it.

    The metric is always inner product on L2-normalised vectors, i.e. cosine similarity.
    """

    model_config = ConfigDict(extra="forbid")

    backend: Backend = Field(
        default="faiss",
        description="'faiss' = an embedded FAISS index in the index directory; 'qdrant' = a "
        "Qdrant collection (index.qdrant: local mode or a server); the index directory then "
        "holds the manifest, the crops and qdrant.json, which names the collection.",
    )
    qdrant: QdrantConfig = Field(
        default_factory=QdrantConfig, description="The qdrant backend's location and collection."
    )
    dir: str = Field(
        default="outputs/vector_index",
        description="Directory the index is persisted to (faiss.index + metadata.sqlite).",
    )
    type: IndexType = Field(
        default="flat",
        description="'flat' = exact brute-force search (recommended up to a few 100k vectors); "
        "'hnsw' = approximate graph search; 'ivf' = approximate inverted-file search (needs "
        "training; exact flat search is used until enough vectors are present).",
    )
    hnsw_m: int = Field(
        default=32, ge=2, le=256, description="HNSW: neighbours per node in the graph (M)."
    )
    hnsw_ef_construction: int = Field(
        default=80, ge=1, description="HNSW: candidate list size while building the graph."
    )
    hnsw_ef_search: int = Field(
        default=128,  # at 1,000,000 x 768 (python -m index.bench.hnsw): 64 gave recall@10 0.946, 128 0.971 at p50 0.65 ms
        ge=1,
        description="HNSW: candidate list size while searching (raised to k when k is larger).",
    )
    ivf_nlist: int = Field(default=256, ge=1, description="IVF: number of clusters (lists).")
    ivf_nprobe: int = Field(default=16, ge=1, description="IVF: clusters visited per query.")
    ivf_min_points_per_list: int = Field(
        default=39,
        ge=1,
        description="IVF: the index is trained once at least ivf_nlist * this many vectors "
        "are present (39 is FAISS's own minimum for k-means); until then search is exact flat.",
    )
    exact_filter_threshold: int = Field(
        default=2048,
        ge=0,
        description="hnsw/ivf: a filtered query whose filter allows at most this many vectors "
        "is answered exactly (brute force over the allowed vectors), because graph/cluster "
        "search under a tight filter can miss results. 0 disables this.",
    )
    search_threads: int = Field(
        default=1,
        ge=0,
        description="OpenMP threads FAISS may use for one query (set per calling thread and "
        "restored afterwards). 1 is as fast as more on an idle machine and up to ~10x faster "
        "when other processes load the CPU; 0 = FAISS's default (all cores).",
    )
    normalize: bool = Field(
        default=True,
        description="L2-normalise vectors on add and on query, so that inner product is cosine "
        "similarity. Turn off only if the embedder already returns unit vectors.",
    )

    @model_validator(mode="after")
    def _backend_settings(self) -> VectorIndexConfig:
        if self.backend == "qdrant":
            if self.type == "ivf":
                raise ValueError("index.type 'ivf' is FAISS-only; with index.backend 'qdrant' use "
                                 "'flat' (exact search) or 'hnsw'")
            if self.qdrant.path is None and self.qdrant.url is None:
                raise ValueError("index.backend 'qdrant' needs index.qdrant.path (local mode) or "
                                 "index.qdrant.url (a server)")
        return self

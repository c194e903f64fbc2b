"""Configuration of the FAISS vector index (kept free of heavy imports).

:class:`VectorIndexConfig` is re-exported by :mod:`index.vector_store`, whose import loads only
this module, so that validating a domain configuration does not have to import LlamaIndex or
FAISS.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

IndexType = Literal["flat", "hnsw", "ivf"]


class VectorIndexConfig(BaseModel):
    """Where the vector index lives and which FAISS structure backs it.

    The metric is always inner product on L2-normalised vectors, i.e. cosine similarity.
    """

    model_config = ConfigDict(extra="forbid")

    dir: str = Field(
        default="outputs/vector_index",
        description="Directory the index is persisted to (faiss.index + metadata.json).",
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
        default=64,
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

"""The errors of a persisted :class:`~index.vector_store.FaissNodeStore`'s files (no heavy imports:
raised both when a directory is loaded and when a row is first parsed, long after)."""

from __future__ import annotations

from index.errors import DamageRagError

REBUILD_HINT = "rebuild the index with `python -m index build`"


class VectorStoreFileError(DamageRagError, ValueError):
    """A persisted store file is missing, unreadable or inconsistent (the message names it).

    ``code`` says which: ``store_corrupt`` (a file that cannot be read or has the wrong
    shape), ``store_missing``, ``store_old_format`` (a directory of format version 1),
    ``ids_mismatch`` (the two files disagree on the vectors), ``dim_mismatch`` or
    ``type_mismatch`` (the caller's config asks for another index type).
    """

    def __init__(self, message: str, code: str = "store_corrupt") -> None:
        """``message`` names the file; ``code`` classifies the fault (see the class doc)."""
        super().__init__(message)
        self.code = code


class VectorStoreFileMissingError(VectorStoreFileError, FileNotFoundError):
    """One of the store's two files does not exist (also a ``FileNotFoundError``)."""

    def __init__(self, message: str) -> None:
        """``message`` names the missing file."""
        super().__init__(message, "store_missing")


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (FAISS and pydantic messages span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def corrupt_metadata(path: object, what: str) -> VectorStoreFileError:
    """The error for a metadata file of the wrong shape: names ``path`` and ``what`` is wrong."""
    return VectorStoreFileError(
        f"corrupt vector store metadata file {path}: {what}; {REBUILD_HINT}."
    )

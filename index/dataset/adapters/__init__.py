"""Dataset adapters: one module per annotation format.

An adapter turns a folder in some annotation format into :class:`~index.dataset.records.RawImage`
records and :class:`~index.dataset.records.Issue` skips. Adding a format is adding a file here that
defines ``ADAPTER`` (a class following :class:`~index.dataset.adapters.base.DatasetAdapter`), or
naming ``package.module:Class`` in the config: the pipeline does not change.
"""

from index.dataset.adapters.base import AdapterError, DatasetAdapter, load_adapter

__all__ = ["AdapterError", "DatasetAdapter", "load_adapter"]

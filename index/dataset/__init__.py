"""Reading a labelled dataset: adapters per annotation format, checks, vehicles, samples and splits.

The first step of the offline flow (dataset -> regions -> embeddings -> index): an adapter
(:mod:`index.dataset.adapters`) turns a folder into raw records, :func:`read_dataset` checks
every image header and annotation (each problem a counted skip or repair with its reason) and
groups photos into vehicles; :func:`stratified_sample` and :func:`split_by_vehicle` choose
which photos a run uses.
"""

from index.dataset.ingest import DatasetScan, assign_vehicle_groups, check_image, read_dataset
from index.dataset.records import ImageRecord, Issue, RawImage, RawShape, Region, issue_list
from index.dataset.sampling import stratified_sample
from index.dataset.splits import Split, split_by_vehicle

__all__ = [
    "DatasetScan",
    "ImageRecord",
    "Issue",
    "RawImage",
    "RawShape",
    "Region",
    "Split",
    "assign_vehicle_groups",
    "check_image",
    "issue_list",
    "read_dataset",
    "split_by_vehicle",
    "stratified_sample",
]

"""Data layer: the sample schema, loaders registered by name, validation, synthetic data, collate."""

from egmf.data.registry import DATASETS, dataset_names, load_dataset, register_builtin_datasets, register_dataset
from egmf.data.schema import BenchmarkData, DatasetInfo, Sample

__all__ = [
    "DATASETS",
    "BenchmarkData",
    "DatasetInfo",
    "Sample",
    "dataset_names",
    "load_dataset",
    "register_builtin_datasets",
    "register_dataset",
]

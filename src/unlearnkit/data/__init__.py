"""Data: sources (one loader per format), forget specs, and the validated Split."""
from . import (  # noqa: F401  (register the loaders)
    cifar, digits, hf_images, idx, imagefolder, mmlu, muse, tinyimagenet, tofu, tofu_mini, wmdp, wmdp_mini,
)
from .dataset import TensorData, cycle_batches, iterate_batches, labels_of, num_batches, subset
from .forget import ForgetSpec, make_split, parse_forget_spec
from .sources import DATA_SOURCES, DataSource, load_data
from .split import Split

__all__ = [
    "DATA_SOURCES", "DataSource", "ForgetSpec", "Split", "TensorData", "cycle_batches",
    "iterate_batches", "labels_of", "load_data", "make_split", "num_batches", "parse_forget_spec", "subset",
]

"""The embedded default data: scikit-learn's handwritten digits (real scans, ships inside the package).

1,797 grey 8×8 images of the digits 0–9 (UCI optdigits test set as packaged by scikit-learn).
A fixed, stratified 80/20 train/test split (seed 0) so every run sees the same examples.
Pixels are scaled from 0–16 to 0–1 and shaped as one-channel images ``[N, 1, 8, 8]``.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from .dataset import TensorData
from .sources import DataSource, data_source

TEST_FRACTION = 0.2
SPLIT_SEED = 0
# A coarse grouping used by sub-class scenarios (``entangle``): digits grouped by shape family.
DIGIT_GROUPS = {0: 0, 6: 0, 8: 0, 9: 0, 1: 1, 4: 1, 7: 1, 2: 2, 3: 2, 5: 2}


@data_source("digits")
def load_digits(path: str | None = None, **options) -> DataSource:
    if path:
        raise ConfigError("digits is embedded and takes no PATH (use `--data digits`)")
    if options:
        raise ConfigError(f"digits takes no options ({', '.join(options)}); --hf-model is for text data")
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_load_digits()
    x = (bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    train_rows, test_rows = train_test_split(
        np.arange(len(y)), test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y
    )
    train_rows.sort()
    test_rows.sort()
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    return DataSource(
        name="digits",
        train=TensorData(x_t[train_rows], y_t[train_rows]),
        test=TensorData(x_t[test_rows], y_t[test_rows]),
        num_classes=10,
        input_shape=(1, 8, 8),
        class_names=[str(d) for d in range(10)],
        groups=dict(DIGIT_GROUPS),
        default_scenarios=("class:0", "random:0.1"),
    )

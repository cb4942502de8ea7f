"""Calibrated defaults: each method's values chosen by a committed study, for models trained on
small data (``scale="small"``), one layer of the resolver (``resolve.py``: after the method's own
per-kind defaults, before a paper's preset and the user's values).

A paper's learning rate is a number for the paper's model and training recipe: on a classifier
trained another way (another optimizer, no input normalisation, label smoothing) the same number
does nothing or destroys the model (issue 17's measurement). The image values below were chosen by
a grid search over a *calibration set* of four digits classifiers, three of them trained outside
unlearnkit by plain PyTorch loops, so that at these defaults every forgetting method reaches
UA ≥ 90 with RA ≥ 90 on class-wise forgetting and keeps RA ≥ 90 on random forgetting, on every model
of the set, where the grid allows; most use ``step_size="relative"`` (a step as a fraction of each
tensor's norm, which is what makes one value hold across models). The selection looked at the
validation half of the held-out data only. Study, grids, every grid point's figures and the command:
:data:`STUDIES`; the table of every method × model at these defaults: ``docs/calibration.md``.

``tests/test_calibrated.py`` keeps :data:`CALIBRATED` equal to the study files' best values.
"""
from __future__ import annotations

from typing import Any

# key -> the committed study (repository path) its values come from. A key is a kind of data (the
# values for any data of that kind) or an embedded benchmark's name (its own study, over the kind's)
STUDIES: dict[str, str] = {
    "image": "benchmarks/studies/calibration-digits.json",
}

# key -> method -> {field: value}: the study's best point per method
CALIBRATED: dict[str, dict[str, dict[str, Any]]] = {
    "image": {},
}


def calibrated_values(method: str, kind: str, data: str | None = None) -> tuple[str | None, dict[str, Any]]:
    """(study file, values): the calibrated defaults of ``method`` for ``data`` (an embedded benchmark's
    own study) or else for ``kind`` data; (None, {}) when it has none."""
    for key in (data, kind):
        if key is not None and method in CALIBRATED.get(key, {}):
            return STUDIES[key], dict(CALIBRATED[key][method])
    return None, {}

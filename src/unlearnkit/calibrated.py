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
    "wmdp-mini": "benchmarks/studies/wmdp-mini.json",
    "tofu-mini": "benchmarks/studies/tofu-mini.json",
}

# key -> method -> {field: value}: the study's best point per method
CALIBRATED: dict[str, dict[str, dict[str, Any]]] = {
    # the grid point of benchmarks/studies/calibration-digits.json that meets the criterion on the most
    # (model, scenario) cells of the calibration set, then the lowest mean gap to retrain; "meets k/8"
    "image": {
        "bad_teacher": {"epochs": 10, "lr": 0.005, "step_size": "relative"},  # meets 8/8
        "entangle": {"phase1_lr": 0.0001, "phase2_lr": 0.0002},  # meets 7/8
        "ga": {"epochs": 5, "lr": 0.0005, "step_size": "relative"},  # meets 7/8
        "graddiff": {"epochs": 5, "lr": 0.00015, "step_size": "relative"},  # meets 6/8
        "idk": {"epochs": 10, "lr": 0.0005, "step_size": "relative"},  # meets 8/8
        "idk_dpo": {"epochs": 10, "lr": 0.0003, "step_size": "relative"},  # meets 8/8
        "ieu": {"epochs": 10, "lr": 0.0002, "step_size": "relative"},  # meets 8/8
        "l1_sparse": {"epochs": 10, "lr": 0.001, "step_size": "relative"},  # meets 8/8
        "lur": {"epochs": 10, "lr": 0.0015, "step_size": "relative"},  # meets 7/8
        "mox": {"alpha": 8.0, "lr": 0.0002, "step_size": "relative"},  # meets 6/8
        "neggrad_plus": {"epochs": 5, "lr": 0.0002, "step_size": "relative"},  # meets 8/8
        "npo": {"epochs": 5, "lr": 0.00015, "step_size": "relative"},  # meets 6/8
        "random_label": {"epochs": 5, "lr": 0.001, "step_size": "relative"},  # meets 8/8
        "rmu": {"epochs": 10, "lr": 0.002, "step_size": "relative"},  # meets 8/8
        "rosu": {"epochs": 3, "lr": 0.005, "step_size": "relative"},  # meets 7/8
        "salun": {"epochs": 5, "lr": 0.001, "step_size": "relative"},  # meets 8/8
        "scrub": {"epochs": 5, "lr": 0.01, "step_size": "relative"},  # meets 6/8
        "simnpo": {"epochs": 20, "lr": 0.0005, "step_size": "relative"},  # meets 8/8
        "ssd": {"alpha": 5.0, "lam": 1.0},  # meets 4/8
        "uam": {"epochs": 3, "lr": 0.005, "step_size": "relative"},  # meets 7/8
    },
    # each method's `unlearnkit tune` study on wmdp-mini (benchmarks/tune_embedded.py): the best feasible
    # trial (hazard accuracy at general accuracy >= 0.95 x the original's, validation half); ga has no
    # feasible trial (the least violating one). ga, graddiff, lur, npo, rmu, simnpo: 12 trials in the
    # methods' own lr ranges; entangle, idk, ieu, mox, rosu: 16 trials in the Adam-sized text range
    "wmdp-mini": {
        "entangle": {"alpha": 0.5057613962722014, "phase1_epochs": 4, "phase1_lr": 0.0009024914461473052, "phase2_epochs": 5, "phase2_lr": 2.364531112591893e-06},
        "ga": {"epochs": 9, "lr": 0.00014016907816835644},
        "graddiff": {"alpha": 0.4582684688693615, "epochs": 10, "lr": 0.002738548776139996, "retain_loss": "nll"},
        "idk": {"alpha": 9.00343650778586, "epochs": 4, "lr": 0.004502738963005248},
        "ieu": {"ascent_weight": 0.6539928583051348, "decay": 0.336232676045463, "epochs": 4, "lr": 0.0029191994151397693, "noise_sigma": 0.003735999714482932, "repair_epochs": 0},
        "lur": {"alpha": 0.1, "epochs": 10, "forget_weight": 0.25, "lr": 0.001, "unlearn_loss": "ga"},
        "mox": {"alpha": 4.0, "epochs": 7, "eta": 0.8569506565431783, "kl_weight": 2.0342246893412423, "lr": 0.0006204510528711129},
        "npo": {"alpha": 1.7209504678884493, "beta": 0.04582684688693616, "epochs": 10, "lr": 0.002738548776139996},
        "rmu": {"alpha": 3.5784419720161083, "epochs": 7, "lr": 0.041696137111085545, "steering_coeff": 4.33047839612555},
        "rosu": {"amp": 0.07234382047161472, "epochs": 6, "lr": 0.0012311941170598942, "rho": 0.26222826160759577},
        "simnpo": {"beta": 0.6929783213782025, "epochs": 4, "gamma": 0.08799014795205107, "lr": 0.0019042071927315826},
    },
    # each method's `unlearnkit tune` study on tofu-mini v2 (benchmarks/tune_embedded.py, forget05): the best
    # feasible trial (forget quality at model utility >= 0.95 x the original's, validation half; floor 0.830)
    "tofu-mini": {
        "entangle": {"alpha": 0.18877806700539604, "phase1_epochs": 4, "phase1_lr": 0.0004649580020506836, "phase2_epochs": 1, "phase2_lr": 6.020272458054606e-06},  # validation: forget quality 0.036 at utility 0.882
        "ga": {"epochs": 1, "lr": 0.0030243366651924912},  # validation: forget quality 0.036 at utility 0.837
        "graddiff": {"alpha": 0.16515956480297603, "epochs": 4, "lr": 0.0005305569574620017, "retain_loss": "kl"},  # validation: forget quality 0.00059 at utility 0.866
        "idk": {"alpha": 0.4582684688693615, "epochs": 10, "lr": 0.0006517805439204111},  # validation: forget quality 3.4e-08 at utility 0.843
        "ieu": {"ascent_weight": 0.8213442708373082, "decay": 1.1380824295547403, "epochs": 2, "lr": 0.0014145212614842554, "noise_sigma": 0.012345979729189764, "repair_epochs": 0},  # validation: forget quality 4e-05 at utility 0.855
        "lur": {"alpha": 0.0467161380731295, "epochs": 9, "forget_weight": 0.088203232109666, "lr": 0.001407461178144378, "unlearn_loss": "ga"},  # validation: forget quality 0.29 at utility 0.850
        "mox": {"alpha": 8.0, "epochs": 9, "eta": 0.8470225812081168, "kl_weight": 0.6126183094439652, "lr": 0.00046396286998262403},  # validation: forget quality 0.91 at utility 0.842
        "npo": {"alpha": 2.3739730125025833, "beta": 0.31627008097390436, "epochs": 6, "lr": 0.0017562318182795},  # validation: forget quality 0.71 at utility 0.840
        "rmu": {"alpha": 4.012788059784537, "epochs": 9, "lr": 0.0122400889541672, "steering_coeff": 1.068006414870398},  # validation: forget quality 0.71 at utility 0.832
        "rosu": {"amp": 0.7464554222418097, "epochs": 6, "lr": 0.00012107446890616, "rho": 3.6040648214739153},  # validation: forget quality 0.16 at utility 0.863
        "simnpo": {"beta": 1.345979559286733, "epochs": 10, "gamma": 0.6178841853577687, "lr": 0.0006517805439204111},  # validation: forget quality 0.71 at utility 0.860
    },
}


def calibrated_values(method: str, kind: str, data: str | None = None) -> tuple[str | None, dict[str, Any]]:
    """(study file, values): the calibrated defaults of ``method`` for ``data`` (an embedded benchmark's
    own study) or else for ``kind`` data; (None, {}) when it has none."""
    for key in (data, kind):
        if key is not None and method in CALIBRATED.get(key, {}):
            return STUDIES[key], dict(CALIBRATED[key][method])
    return None, {}

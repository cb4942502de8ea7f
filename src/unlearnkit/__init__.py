"""unlearnkit: machine unlearning for image classifiers and language models.

Public API::

    import unlearnkit as uk
    source = uk.load_data("digits")                 # or NAME:PATH for data on disk
    task, model = uk.make_task(source), uk.make_model(source, seed=0)
    uk.fit(model, task, source.train)               # the "original", with the data kind's recipe
    split = uk.make_split(source, "class:3")
    unlearned = uk.unlearn(model, task, split, method="ga", lr=1e-3)  # a new model; `model` untouched
    metrics = uk.audit(unlearned, task, split)                         # {"ua": ..., "ra": ..., ...}
    uk.resolve_config("ga", kind="text")    # the hyper-parameters a run uses, as every command resolves them
"""
__version__ = "0.1.0"

from .audits import METRICS, audit, avg_gap  # noqa: E402
from .checkpoints import load_weights, save_weights  # noqa: E402
from .data import DataSource, Split, TensorData, load_data, make_split  # noqa: E402
from .errors import (  # noqa: E402
    CheckpointError, ConfigError, DataError, DivergenceError, MissingExtraError, NotApplicable, SpecError,
    UnlearnkitError,
)
from .methods import METHODS, fit, unlearn  # noqa: E402
from .models import build_model  # noqa: E402
from .tasks import CausalLMTask, ClassificationTask, Task  # noqa: E402
from .bench.workload import make_model, make_task  # noqa: E402
from .resolve import explain_config, resolve_config, resolve_recipe  # noqa: E402

__all__ = [
    "METHODS", "METRICS", "CausalLMTask", "CheckpointError", "ClassificationTask", "ConfigError", "DataError", "DataSource",
    "DivergenceError", "MissingExtraError", "NotApplicable", "Split", "SpecError", "Task", "TensorData", "UnlearnkitError", "audit", "avg_gap",
    "build_model", "explain_config", "fit", "load_data", "load_weights", "make_model", "make_split", "make_task",
    "resolve_config", "resolve_recipe", "save_weights", "unlearn", "__version__",
]

"""Methods: one file per method, a registry, one shared training loop.

Every module in this package is imported here, so a new method file registers itself by
being present (``@register`` on its class); infrastructure modules are listed in ``_INFRA``.
"""
import importlib
import pkgutil

from .api import build_config, unlearn
from .base import METHODS, Method, MethodConfig, RunContext, describe_config, register
from .callbacks import Callback, ConsoleLogger, CSVLogger, History, TensorBoardLogger
from .loop import LoopMethod
from .training import LMTrainConfig, TrainConfig, fit

_INFRA = {"api", "base", "callbacks", "gradients", "loop", "reference_model", "training"}
# reference rows first so listings and tables start with them
for _name in ["reference"] + sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _INFRA | {"reference"}):
    importlib.import_module(f"{__name__}.{_name}")

__all__ = [
    "CSVLogger", "Callback", "ConsoleLogger", "History", "LMTrainConfig", "METHODS", "LoopMethod", "Method",
    "MethodConfig", "RunContext", "TensorBoardLogger", "TrainConfig", "build_config", "describe_config", "fit",
    "register", "unlearn",
]

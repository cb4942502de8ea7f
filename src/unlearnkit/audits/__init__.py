"""Audits: one file per family, registered by name."""
from . import accuracy, lira, mia, muse, relearn, text_mia, tofu, weights, wmdp  # noqa: F401  (register the families)
from .api import DEFAULT_AUDITS, FULL_AUDITS, audit
from .base import AUDITS, AuditContext, per_example
from .gap import avg_gap
from .metrics import GAP_METRICS, METRICS

__all__ = ["AUDITS", "AuditContext", "DEFAULT_AUDITS", "FULL_AUDITS", "GAP_METRICS", "METRICS", "audit", "avg_gap", "per_example"]

"""The review stage's label audit: suspected errors in human labels, ranked.

:func:`audit` is the entry point; :func:`corrupt_labels` injects known errors (the
benchmark's protocol and the ranker's training data).
"""

from autolabel.audit.core import SUSPECT_COLUMNS, Audit, AuditOptions, audit
from autolabel.audit.corrupt import DEFAULT_RATES, Injected, corrupt_images, corrupt_labels
from autolabel.audit.features import KINDS
from autolabel.audit.ranker import Ranker, average_precision, fit_ranker, hits

__all__ = ["audit", "Audit", "AuditOptions", "SUSPECT_COLUMNS", "corrupt_labels", "corrupt_images", "Injected", "DEFAULT_RATES", "KINDS", "Ranker",
           "fit_ranker", "hits", "average_precision"]

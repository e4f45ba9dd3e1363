"""Savings: the edits a person makes to pre-labels, priced in seconds and money.

``edits`` counts and prices edits from one :class:`~autolabel.matching.Matching`; ``report``
builds the savings report; ``thresholds`` fits per-class thresholds; ``costfit`` fits cost
constants to measured review logs; ``ladder`` compares models; ``render`` draws tables.
"""

from autolabel.savings.edits import EditCounts, Per1000, Savings, count_edits, edit_seconds, scratch_seconds, summarize, sweep_edits

__all__ = ["EditCounts", "Savings", "Per1000", "count_edits", "edit_seconds", "scratch_seconds", "summarize", "sweep_edits"]

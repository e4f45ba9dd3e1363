"""The base of autolabel's public result types: frozen dataclasses that read as attributes
(``s.per_1000_images.saved_hours``), turn into JSON-ready dicts (:meth:`Record.to_dict`,
the keys the reports have always written) and DataFrames (:meth:`Record.to_pandas`),
show a short ``repr`` and render as one table in a notebook.
"""

from __future__ import annotations

import dataclasses
import html
import math
import warnings
from typing import Any, ClassVar, Mapping, TypeVar

import numpy as np

__all__ = ["Record", "Options", "plain"]

_O = TypeVar("_O", bound="Options")


def plain(v: Any) -> Any:
    """``v`` as JSON-ready data: records and mappings as dicts, tuples and arrays as
    lists, numpy scalars as Python numbers, DataFrames as lists of records."""
    if isinstance(v, Record):
        return v.to_dict()
    if isinstance(v, Mapping):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return plain(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    if hasattr(v, "to_json") and hasattr(v, "columns"):  # a DataFrame
        import json

        return json.loads(v.to_json(orient="records"))
    return v


def _short(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, (tuple, list)) and len(v) <= 3:
        return "(" + ", ".join(_short(x) for x in v) + ")"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {_short(x)}" for k, x in list(v.items())[:6]) + (", ..." if len(v) > 6 else "") + "}"
    if isinstance(v, (tuple, list)):
        return f"[{len(v)} items]"
    return repr(v) if isinstance(v, str) else str(v)


def _fields(record: Any) -> tuple[dataclasses.Field, ...]:
    return dataclasses.fields(record)


class Record:
    """Mixin of the frozen result dataclasses.

    Subclasses name the fields their ``repr`` shows in ``_REPR`` (default: every scalar
    field) and may override :meth:`to_dict` / :meth:`to_pandas`.
    """

    _REPR: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready data (see :func:`plain`), in field order."""
        return {f.name: plain(getattr(self, f.name)) for f in _fields(self) if f.repr}

    def to_pandas(self) -> Any:
        """A two-column DataFrame (``field``, ``value``) of the scalar values of
        :meth:`to_dict`, nested ones named ``outer.inner``."""
        import pandas as pd

        rows: list[tuple[str, Any]] = []

        def walk(prefix: str, v: Any) -> None:
            if isinstance(v, dict):
                for k, x in v.items():
                    walk(f"{prefix}.{k}" if prefix else k, x)
            elif isinstance(v, list) and len(v) <= 3 and all(not isinstance(x, (dict, list)) for x in v):
                rows.append((prefix, tuple(v)))
            elif not isinstance(v, list):
                rows.append((prefix, v))

        walk("", self.to_dict())
        return pd.DataFrame(rows, columns=["field", "value"])

    def __repr__(self) -> str:
        names = self._REPR or tuple(
            f.name for f in _fields(self) if f.repr and isinstance(getattr(self, f.name), (int, float, str, type(None)))
        )
        return f"{type(self).__name__}(" + ", ".join(f"{n}={_short(getattr(self, n))}" for n in names) + ")"

    def _repr_html_(self) -> str:
        return f"<p><code>{html.escape(repr(self))}</code></p>" + self.to_pandas().to_html(index=False)

    def __getitem__(self, key: str) -> Any:
        """Read a field as a key, as when this result was a dict (deprecated: use the attribute)."""
        warnings.warn(f"{type(self).__name__}[{key!r}] is deprecated; read the attribute .{key}",
                      DeprecationWarning, stacklevel=2)
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None


class Options:
    """Mixin of the frozen option dataclasses (``SavingsOptions``, ``AuditOptions``,
    ``MeasureOptions``): validated in their ``__post_init__``, built from keywords by
    :meth:`of`."""

    @classmethod
    def of(cls: type[_O], options: _O | None = None, **kw: Any) -> _O:
        """``options`` (default: the defaults) with the keyword options ``kw`` in place,
        refusing unknown names as scikit-learn's ``set_params`` does.

        Raises:
            TypeError: an unknown option, naming the known ones.
        """
        known = {f.name for f in _fields(cls)}
        unknown = sorted(set(kw) - known)
        if unknown:
            raise TypeError(f"unknown {cls.__name__} {unknown}; choose from {sorted(known)}")
        base: Any = options or cls()
        out: _O = dataclasses.replace(base, **kw)
        return out

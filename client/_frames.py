"""Records as table rows, and as a pandas DataFrame (``page.to_pandas()``).

One row per record and one column per value that has a place of its own: nested objects are
flattened (``occurred.start`` → ``occurred_start``; ``location.country`` → ``country``;
``casualties.killed.best`` → ``killed_best``), a nested object that is absent gives empty
cells rather than missing columns, and lists stay whole in their cell (``participants``,
``citations``, ``breakdown``… as lists of dicts) — plus, for a list of named things, their names
(``participant_names``). Ids are strings, dates and times stay dates and times (``datetime64``
in pandas).

pandas is optional (``pip install 'secevents[pandas]'``); nothing here imports it until
:func:`to_pandas` runs, so the SDK works without it.
"""

from __future__ import annotations

import datetime as dt
import enum
import importlib
import uuid
from collections.abc import Iterable
from typing import Any

import msgspec

__all__ = ["PANDAS_HINT", "columns", "to_pandas", "to_rows"]

PANDAS_HINT = "pip install 'secevents[pandas]'"
# Objects whose fields read well without their parent's name in front.
_UNPREFIXED = {"location", "casualties"}
# …except where the bare name would be ambiguous.
_KEEP_PREFIX = {("location", "precision")}


Columns = tuple[tuple[str, tuple[str, ...]], ...]
_COLUMNS: dict[type[Any], Columns] = {}


def columns(record_type: type[Any]) -> Columns:
    """``(column, path of attributes)`` of every column of ``record_type``, in field order."""
    known = _COLUMNS.get(record_type)
    if known is not None:
        return known
    out: list[tuple[str, tuple[str, ...]]] = []

    def walk(struct: msgspec.inspect.StructType, path: tuple[str, ...]) -> None:
        for field in struct.fields:
            nested = _struct_of(field.type)
            here = (*path, field.name)
            if nested is not None:
                walk(nested, here)
            else:
                out.append((_name(here), here))
                names = _named_items(field.type)
                if names:
                    out.append((f"{field.name.removesuffix('s')}_names", (*here, "*name")))

    info = msgspec.inspect.type_info(record_type)
    if not isinstance(info, msgspec.inspect.StructType):
        raise TypeError(f"records are msgspec Structs, not {record_type!r}")
    walk(info, ())
    _COLUMNS[record_type] = tuple(out)
    return _COLUMNS[record_type]


def _struct_of(kind: msgspec.inspect.Type) -> msgspec.inspect.StructType | None:
    """The Struct a field holds (alone or or-None), else None."""
    if isinstance(kind, msgspec.inspect.StructType):
        return kind
    if isinstance(kind, msgspec.inspect.UnionType):
        structs = [t for t in kind.types if isinstance(t, msgspec.inspect.StructType)]
        others = [
            t for t in kind.types if not isinstance(t, msgspec.inspect.StructType | msgspec.inspect.NoneType)
        ]
        if len(structs) == 1 and not others:
            return structs[0]
    return None


def _named_items(kind: msgspec.inspect.Type) -> bool:
    if isinstance(kind, msgspec.inspect.ListType) and isinstance(kind.item_type, msgspec.inspect.StructType):
        return any(f.name == "name" for f in kind.item_type.fields)
    return False


def _name(path: tuple[str, ...]) -> str:
    if len(path) > 1 and path[0] in _UNPREFIXED and (path[0], path[-1]) not in _KEEP_PREFIX:
        path = path[1:]
    return "_".join(path)


def _value(record: object, path: tuple[str, ...]) -> Any:
    value: Any = record
    for step in path:
        if value is None:
            return None
        if step == "*name":
            return [getattr(item, "name", None) for item in value]
        value = getattr(value, step)
    return _plain(value)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool | dt.date):
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return msgspec.to_builtins(value)  # lists and dicts, whole (their ids and dates as text)


def to_rows(records: Iterable[Any]) -> list[dict[str, Any]]:
    """One flat dict per record (see the module's docstring)."""
    rows = []
    for record in records:
        rows.append({name: _value(record, path) for name, path in columns(type(record))})
    return rows


def to_pandas(records: Iterable[Any], record_type: type[Any] | None = None) -> Any:
    """A ``pandas.DataFrame`` of ``records`` (every page of a list), one row per record.

    ``record_type`` names the columns when there may be no record at all."""
    try:
        pd = importlib.import_module("pandas")
    except ModuleNotFoundError:
        raise ModuleNotFoundError(f"to_pandas() needs pandas: {PANDAS_HINT}", name="pandas") from None
    items = list(records)
    kind = type(items[0]) if items else record_type
    names = [name for name, _ in columns(kind)] if kind is not None else []
    frame = pd.DataFrame(to_rows(items), columns=names)
    for name in names:
        values = [v for v in frame[name] if v is not None]
        if values and all(isinstance(v, dt.datetime) for v in values):
            frame[name] = pd.to_datetime(frame[name], utc=True)
        elif values and all(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in values):
            frame[name] = pd.to_datetime(frame[name])
    return frame

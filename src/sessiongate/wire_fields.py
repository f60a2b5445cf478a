"""A record's fields as the gateway's wire form: the same values under camelCase names."""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["wire_fields"]


def wire_fields(
    record: DataclassInstance,
    exclude: tuple[str, ...] = (),
    renamed: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """The dataclass `record`'s fields, in order, as ``{"camelName": value}``: but those in
    `exclude`, and each ``(field, name)`` of `renamed` under that name."""
    return {name: getattr(record, attr) for attr, name in _names(type(record), exclude, renamed)}


@functools.cache
def _names(
    cls: type[DataclassInstance], exclude: tuple[str, ...], renamed: tuple[tuple[str, str], ...]
) -> tuple[tuple[str, str], ...]:
    names = dict(renamed)
    return tuple(
        (f.name, names.get(f.name) or _camel(f.name))
        for f in dataclasses.fields(cls)
        if f.name not in exclude
    )


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)

"""Field specifications derived from the pydantic records in :mod:`adpilot.schema`.

The records are the single source of truth for what a valid field is (required or not, default, length,
bounds, pattern, enum); this module reads them once so that bulk validation in SQL checks exactly what a
single-record validation would.
"""

from __future__ import annotations

import enum
import functools
import types
import typing
from dataclasses import dataclass
from datetime import datetime

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

FieldKind = typing.Literal["str", "enum", "float", "int", "bool", "ts", "list", "map", "json"]


@dataclass(frozen=True)
class FieldSpec:
    """What one column must hold. ``default`` is a Python value used when the input is missing."""

    name: str
    kind: FieldKind
    required: bool
    default: object = None
    max_len: int | None = None
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    pattern: str | None = None
    choices: tuple[str, ...] = ()
    finite: bool = False


def _unwrap(annotation: object) -> tuple[object, list[object]]:
    """Strip ``Optional`` and ``Annotated`` layers, collecting their constraint metadata."""
    metadata: list[object] = []
    while True:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0]
        elif origin is typing.Annotated:
            base, *extra = typing.get_args(annotation)
            for item in extra:
                metadata.extend(getattr(item, "metadata", [item]))
            annotation = base
        else:
            return annotation, metadata


def _kind_of(annotation: object) -> tuple[FieldKind, tuple[str, ...]]:
    origin = typing.get_origin(annotation)
    if origin is list:
        return "list", ()
    if origin is dict:
        return ("map" if typing.get_args(annotation)[1] is str else "json"), ()
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return "enum", tuple(str(m.value) for m in annotation)
        if issubclass(annotation, BaseModel):
            return "json", ()
        for py, kind in ((bool, "bool"), (int, "int"), (float, "float"), (datetime, "ts"), (str, "str")):
            if issubclass(annotation, py):
                return typing.cast(FieldKind, kind), ()
    raise TypeError(f"no bulk validation for annotation {annotation!r}")


@functools.cache
def specs_from_model(model: type[BaseModel]) -> tuple[FieldSpec, ...]:
    """One :class:`FieldSpec` per field of ``model``, constraints included.

    >>> from adpilot.schema import Event
    >>> price = {s.name: s for s in specs_from_model(Event)}["price"]
    >>> (price.kind, price.required, price.ge, price.finite)
    ('float', False, 0, True)
    """
    specs = []
    for name, info in model.model_fields.items():
        annotation, metadata = _unwrap(info.annotation)
        metadata = [*metadata, *info.metadata]
        kind, choices = _kind_of(annotation)
        if info.default_factory is not None:
            factory = typing.cast(typing.Callable[[], object], info.default_factory)
            produced = factory()
            default: object = produced.model_dump() if isinstance(produced, BaseModel) else produced
        else:
            default = None if info.default is PydanticUndefined else info.default
        if isinstance(default, enum.Enum):
            default = default.value
        bounds: dict[str, object] = {}
        for item in metadata:
            for cls, key in ((Ge, "ge"), (Gt, "gt"), (Le, "le"), (Lt, "lt"), (MaxLen, "max_len")):
                if isinstance(item, cls):
                    bounds[key] = getattr(item, key if key != "max_len" else "max_length")
            if isinstance(item, MinLen):
                continue
            if getattr(item, "allow_inf_nan", True) is False:
                bounds["finite"] = True
            if getattr(item, "pattern", None):
                bounds["pattern"] = item.pattern  # type: ignore[attr-defined]
        specs.append(FieldSpec(name=name, kind=kind, required=info.is_required(), default=default,
                               choices=choices, **bounds))  # type: ignore[arg-type]
    return tuple(specs)

"""Bedrock's front-door validation of control-plane requests, driven by botocore's own `bedrock` service model.

botocore checks types and required members client side but not patterns, lengths of strings or numeric ranges;
Bedrock does, answering 400 ValidationException in AWS's words ("1 validation error detected: Value 'x' at
'jobName' failed to satisfy constraint: Member must satisfy regular expression pattern: ..."). Walking the
model's shapes gives every constraint of every operation without copying them here.
"""

from __future__ import annotations

import functools
import re

import botocore.session
from botocore.model import ListShape, OperationModel, Shape, StructureShape

from devstack.bedrock.errors import BedrockError


@functools.cache
def operation(name: str) -> OperationModel:
    return botocore.session.get_session().get_service_model("bedrock").operation_model(name)


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _show(value: object) -> str:
    text = str(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _check(shape: Shape, value: object, where: str, problems: list[str]) -> None:
    meta = shape.metadata
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            problems.append(f"Value at '{where}' failed to satisfy constraint: Member must be a structure")
            return
        for name in shape.required_members:
            if value.get(name) is None:
                problems.append(f"Value null at '{where}{name}' failed to satisfy constraint: Member must not be null")
        if meta.get("union") and sum(1 for v in value.values() if v is not None) != 1:
            label = where.rstrip(".")
            problems.append(f"Value at '{label}' failed to satisfy constraint: Exactly one member must be set")
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _check(member, value[name], f"{where}{name}.", problems)
        return
    label = where.rstrip(".")
    if isinstance(shape, ListShape):
        if not isinstance(value, list):
            problems.append(f"Value at '{label}' failed to satisfy constraint: Member must be a list")
            return
        _length(len(value), meta, label, "length", problems, value)
        for i, item in enumerate(value):
            _check(shape.member, item, f"{label}.{i + 1}.member.", problems)
        return
    if shape.type_name == "string" and isinstance(value, str):
        _length(len(value), meta, label, "length", problems, value)
        if shape.enum and value not in shape.enum:
            problems.append(
                f"Value '{_show(value)}' at '{label}' failed to satisfy constraint: Member must satisfy enum value "
                f"set: [{', '.join(shape.enum)}]"
            )
        pattern = meta.get("pattern")
        if pattern and not _compiled(pattern).fullmatch(value):
            problems.append(
                f"Value '{_show(value)}' at '{label}' failed to satisfy constraint: Member must satisfy regular "
                f"expression pattern: {pattern}"
            )
    elif shape.type_name in ("integer", "long") and isinstance(value, int):
        _length(value, meta, label, "value", problems, value)


def _length(n: int, meta: dict, label: str, what: str, problems: list[str], value: object) -> None:
    relation = "length " if what == "length" else "value "
    if "min" in meta and n < meta["min"]:
        problems.append(
            f"Value '{_show(value)}' at '{label}' failed to satisfy constraint: Member must have {relation}greater "
            f"than or equal to {meta['min']}"
        )
    if "max" in meta and n > meta["max"]:
        problems.append(
            f"Value '{_show(value)}' at '{label}' failed to satisfy constraint: Member must have {relation}less "
            f"than or equal to {meta['max']}"
        )


def validate(operation_name: str, params: dict) -> None:
    """Raise Bedrock's ValidationException if `params` (body and URI/query members) break the operation's model."""
    shape = operation(operation_name).input_shape
    problems: list[str] = []
    if shape is not None:
        _check(shape, params, "", problems)
    if problems:
        count = len(problems)
        head = f"{count} validation error{'s' if count > 1 else ''} detected: "
        raise BedrockError("ValidationException", head + "; ".join(problems))

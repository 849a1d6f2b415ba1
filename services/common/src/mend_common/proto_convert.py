"""Proto messages to plain data and back, so the domain sees the same dicts from gRPC as from JSON.

Enum values become their short lower-case names ("OFFENCE_CATEGORY_BURGLARY" -> "burglary"); the
*_UNSPECIFIED value becomes absent; a number the proto does not define stays a number, which the
domain rejects with "must be one of ...".
"""
from __future__ import annotations

import re
from typing import Any

from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message


def _prefix(enum: EnumDescriptor) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"


def enum_to_plain(enum: EnumDescriptor, number: int) -> str | int | None:
    value = enum.values_by_number.get(number)
    if value is None:
        return number
    name = value.name.removeprefix(_prefix(enum)).lower()
    return None if name == "unspecified" else name


def plain_to_enum(enum: EnumDescriptor, plain: str | None) -> int:
    if not plain:
        return 0
    value = enum.values_by_name.get(_prefix(enum) + plain.upper())
    return value.number if value else 0


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return enum_to_plain(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_to_plain(value)
    return value


def message_to_plain(message: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.is_repeated:
            out[field.name] = [_scalar(field, item) for item in value]
        else:
            plain = _scalar(field, value)
            if plain is not None:
                out[field.name] = plain
    return out

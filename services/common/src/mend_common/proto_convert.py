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
from google.protobuf.timestamp_pb2 import Timestamp


_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")
_plain_names: dict[str, dict[int, str | None]] = {}


def _prefix(enum: EnumDescriptor) -> str:
    return _CAMEL_BOUNDARY.sub("_", enum.name).upper() + "_"


def _names_of(enum: EnumDescriptor) -> dict[int, str | None]:
    """number -> plain name of every value of the enum, worked out once (every request needs them)."""
    names = _plain_names.get(enum.full_name)
    if names is None:
        prefix = _prefix(enum)
        names = {v.number: v.name.removeprefix(prefix).lower() for v in enum.values}
        names = {number: (None if name == "unspecified" else name) for number, name in names.items()}
        _plain_names[enum.full_name] = names
    return names


def enum_to_plain(enum: EnumDescriptor, number: int) -> str | int | None:
    names = _names_of(enum)
    return names[number] if number in names else number


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


def plain_to_message(data: dict[str, Any], message: Message, path: str = "") -> Message:
    """Fill a proto message from plain data (the inverse of message_to_plain). Raises ValueError
    naming the field for anything the message cannot hold."""
    if not isinstance(data, dict):
        raise ValueError(f"{path or 'body'}: must be an object")
    fields = message.DESCRIPTOR.fields_by_name
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        field = fields.get(key)
        if field is None:
            raise ValueError(f"{where}: is not a recognised field")
        if value is None:
            continue
        if field.is_repeated:
            if not isinstance(value, list):
                raise ValueError(f"{where}: must be a list")
            target = getattr(message, key)
            for i, item in enumerate(value):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    plain_to_message(item, target.add(), f"{where}[{i}]")
                else:
                    _assign(lambda v: target.append(v), _plain_scalar(field, item, f"{where}[{i}]"), f"{where}[{i}]")
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            plain_to_message(value, getattr(message, key), where)
        else:
            _assign(lambda v: setattr(message, key, v), _plain_scalar(field, value, where), where)
    return message


def _assign(setter, value: Any, where: str) -> None:
    try:
        setter(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: has the wrong type") from None


def _plain_scalar(field: FieldDescriptor, value: Any, where: str) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        number = plain_to_enum(field.enum_type, value) if isinstance(value, str) else 0
        if not number:
            options = [enum_to_plain(field.enum_type, v.number) for v in field.enum_type.values if v.number]
            raise ValueError(f"{where}: must be one of: {', '.join(options)}")
        return number
    if isinstance(value, (dict, list)):
        raise ValueError(f"{where}: must be a single value")
    return value


def timestamp(dt) -> Timestamp | None:
    """A datetime as a protobuf Timestamp (a naive one is taken as UTC); None stays None."""
    if dt is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts

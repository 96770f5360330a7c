"""Checking and converting field values written through the API or the control API.

The API path is strict, like Salesforce: a value must fit the field's type, length and
precision, or the record fails with the status code Salesforce uses. The control path is
deliberately lenient about strings, so tests can plant the dirt a real org accumulates (numeric
strings in numeric fields, impossible dates) while still rejecting nonsense such as objects.
"""

from __future__ import annotations

import math
import re
from datetime import date

from gtm_pipeline.emulator.errors import EmulatorError
from gtm_pipeline.emulator.ids import KEY_PREFIXES, is_valid_id, to18
from gtm_pipeline.emulator.schema import ID_TYPES, NUMBER_TYPES, TEXT_TYPES, FieldDef
from gtm_pipeline.emulator.soql import datetime_literal

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DATETIME_TEXT = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2})", re.ASCII
)


class FieldValueError(Exception):
    """A value does not fit its field; carries the Salesforce status code for the record."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _wrong_type(field: FieldDef, value: object) -> FieldValueError:
    shown = str(value)[:80]
    return FieldValueError(
        "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{field.label}: value not of required type: {shown}"
    )


def coerce_for_api(field: FieldDef, value: object) -> object:
    """The stored form of a value written by an API client, or FieldValueError."""
    if value is None:
        if not field.nillable:
            raise FieldValueError(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{field.name}]"
            )
        return None
    if field.type in NUMBER_TYPES:
        return _number(field, value)
    if field.type in TEXT_TYPES:
        return _text(field, value)
    if field.type in ID_TYPES:
        return _reference(field, value)
    if field.type == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _wrong_type(field, value)
    if field.type == "date":
        return _date(field, value)
    if field.type == "datetime":
        return _datetime(field, value)
    raise _wrong_type(field, value)  # pragma: no cover - every stored type is handled above


def coerce_for_control(field: FieldDef, value: object) -> object:
    """The stored form of a value planted through the control API (strings allowed as dirt)."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise _wrong_type(field, value)
    if field.type in NUMBER_TYPES and isinstance(value, str):
        return value
    if field.type == "date" and isinstance(value, str):
        return value
    if field.type in TEXT_TYPES:
        if not isinstance(value, str):
            raise _wrong_type(field, value)
        return value
    return coerce_for_api(field, value)


def _number(field: FieldDef, value: object) -> int | float:
    if isinstance(value, bool):
        raise _wrong_type(field, value)
    if isinstance(value, str):
        try:
            number: float = float(value.strip())
        except ValueError:
            raise _wrong_type(field, value) from None
    elif isinstance(value, int | float):
        number = value
    else:
        raise _wrong_type(field, value)
    if not math.isfinite(number):
        raise _wrong_type(field, value)
    if field.type == "int":
        if number != int(number):
            raise _wrong_type(field, value)
        whole = int(number)
        if abs(whole) >= 10**field.digits:
            raise _out_of_range(field, value)
        return whole
    rounded = round(float(number), field.scale)
    if abs(rounded) >= 10 ** (field.precision - field.scale):
        raise _out_of_range(field, value)
    return rounded


def _out_of_range(field: FieldDef, value: object) -> FieldValueError:
    return FieldValueError(
        "NUMBER_OUTSIDE_VALID_RANGE",
        f"{field.label}: value outside of valid range on numeric field: {value}",
    )


def _text(field: FieldDef, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _wrong_type(field, value)
    text = value if isinstance(value, str) else str(value)
    if field.length and len(text) > field.length:
        raise FieldValueError(
            "STRING_TOO_LONG",
            f"{field.label}: data value too large: {text[:40]}... (max length={field.length})",
        )
    if field.type == "email" and text and not _EMAIL.fullmatch(text):
        raise FieldValueError(
            "INVALID_EMAIL_ADDRESS", f"{field.label}: invalid email address: {text[:80]}"
        )
    return text


def _reference(field: FieldDef, value: object) -> str:
    prefixes = {KEY_PREFIXES[name] for name in field.reference_to}
    if not is_valid_id(value) or str(value)[:3] not in prefixes:
        target = field.reference_to[0] if field.reference_to else "Record"
        raise FieldValueError(
            "MALFORMED_ID", f"{target} ID: id value of incorrect type: {str(value)[:40]}"
        )
    return to18(str(value))


def _date(field: FieldDef, value: object) -> str:
    if not isinstance(value, str) or len(value) != 10:
        raise _wrong_type(field, value)
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise _wrong_type(field, value) from None


def _datetime(field: FieldDef, value: object) -> str:
    if not isinstance(value, str) or not _DATETIME_TEXT.fullmatch(value):
        raise _wrong_type(field, value)
    try:
        return datetime_literal(value)
    except EmulatorError:
        raise _wrong_type(field, value) from None

"""Rules for what clients send, kept apart from what records read back must satisfy (pure).

Tightening a rule must not make a stored record unreadable: a source or subscription
written under the old rule is read with the validation context ``STORED``, under which the
rules made with ``on_input`` do not apply; the OpenAPI document shows the input rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo

# The validation context of records read back from storage.
STORED: dict[str, Any] = {"stored": True}

T = TypeVar("T")


def on_input(check: Callable[[T], T]) -> AfterValidator:
    """A rule for what clients send, not for records read back (see ``STORED``)."""

    def run(value: T, info: ValidationInfo) -> T:
        if isinstance(info.context, dict) and info.context.get("stored"):
            return value
        return check(value)

    return AfterValidator(run)


def _number(value: T) -> T:
    if isinstance(value, str | bool):
        raise ValueError("must be a number")
    return value


# pydantic's lax mode takes "1" and true for numbers; the document promises a number (and
# Strict() would refuse 5.0 for an integer, which JSON Schema counts as one).
NUMBER = BeforeValidator(_number)


def _within(low: float, high: float) -> Callable[[float], float]:
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}")
        return value

    return check


def input_range(low: float, high: float) -> Any:
    """A number in [low, high] for clients (the schema says so); a stored value only needs to
    be a finite number >= 0, as it had to be when it was written."""
    return (
        NUMBER,
        Field(ge=0, allow_inf_nan=False, json_schema_extra={"minimum": low, "maximum": high}),
        on_input(_within(low, high)),
    )

"""Field rules for the params dataclasses, written beside each field: `x: int = checked(positive)`.

A rule takes the value (already of the field's type) and returns None when it is fine, else the
complaint, which the loader (params.py) prints after the key: "train.steps: 0 must be > 0".
Pure Python, no imports of the package, so that every module with params can use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

Rule = Callable[[Any], "str | None"]


def checked(rule: Rule | None = None, default: Any = dataclasses.MISSING):
    """A dataclass field whose values the params loader checks with `rule`."""
    return dataclasses.field(default=default, metadata={"rule": rule} if rule else {})


def rule_of(field: dataclasses.Field) -> Rule | None:
    return field.metadata.get("rule")


def at_least(minimum) -> Rule:
    return lambda v: None if v >= minimum else f"{v} must be >= {minimum}"


def positive(v) -> str | None:
    return None if v > 0 else f"{v} must be > 0"


def one_of(choices) -> Rule:
    return lambda v: None if v in choices else f"{v!r} is unknown; use one of {', '.join(choices)}"


def positive_or_null(what: str) -> Rule:
    return lambda v: None if v > 0 else f"{v} must be > 0, or null {what}"


def not_empty(example: str) -> Rule:
    return lambda v: None if v else f"empty; {example}"

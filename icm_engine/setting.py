"""One run setting's description, carried by the config class's field itself: its help, choices, bounds,
what leaving it out means, and whether the run form folds it under "Advanced". The CLI options, the run
form, the API's help and the table in docs/cli.md are made from these (run_settings.py), so a setting is
described in one place."""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

_MISSING: Any = dataclasses.MISSING


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type  # bool, int, float or str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    low: float | None = None  # inclusive bounds
    high: float | None = None
    positive: bool = False  # a number above 0
    nullable: bool = False  # None is a value the config itself takes (else only the layers above fill it in)
    # What leaving the setting out (None) means; "" where it cannot be left out.
    empty: str = ""
    advanced: bool = False
    label: str = ""  # the run form's label ("" : the name's words)
    cli: bool = True  # an option of `icm label` / `icm baseline`

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def optional(self) -> bool:
        return bool(self.empty)

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` for this setting (None: nothing)."""
        if value is None:
            return None if self.nullable else f"{self.name} must be given"
        if self.choices:
            return None if value in self.choices else f"{self.name} must be one of {', '.join(self.choices)}"
        if self.kind is bool:
            return None if isinstance(value, bool) else f"{self.name} must be true or false"
        if self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                return f"{self.name} must be an integer"
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                return f"{self.name} must be a finite number"
        else:
            return None if isinstance(value, str) else f"{self.name} must be text"
        if self.positive and not value > 0:
            return f"{self.name} must be positive"
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return f"{self.name} must be {_bounds(self.low, self.high)}"
        return None

    def describe(self) -> str:
        """The help with the values it takes and its default: one line for the API and the docs."""
        parts = [self.help.rstrip(".")]
        if self.choices:
            parts.append("one of " + ", ".join(self.choices))
        if self.positive:
            parts.append("above 0")
        if self.low is not None or self.high is not None:
            parts.append(_bounds(self.low, self.high))
        parts.append(f"left out: {self.empty}" if self.empty else f"default {_shown(self.default)}")
        return "; ".join(parts)


class Settings:
    """A config dataclass whose fields are settings, as a plain dict and back: one way for every config."""

    def validate(self) -> Settings:
        raise NotImplementedError

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """The config `data` describes, checked: a name it does not know is an error; one left out or null
        takes its default."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(unknown)}")
        return cls(**{k: v for k, v in data.items() if v is not None}).validate()


def setting(default: Any = _MISSING, help: str = "", *, choices: typing.Sequence[str] | None = None,
            low: float | None = None, high: float | None = None, positive: bool = False, empty: str = "",
            advanced: bool = False, label: str = "", cli: bool = True) -> Any:
    """A config class's field that describes itself (see Setting); `default` as dataclasses.field's."""
    meta = {"setting": {"help": help, "choices": tuple(choices) if choices else None, "low": low, "high": high,
                        "positive": positive, "empty": empty, "advanced": advanced, "label": label, "cli": cli}}
    return dataclasses.field(default=default, metadata=meta)


@functools.cache
def settings_of(cls: type) -> tuple[Setting, ...]:
    """The described fields of a config dataclass, in declaration order (read once per class: every
    validate() checks against them)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("setting")
        if meta is None:
            continue
        kind, nullable = _base_type(hints[f.name])
        out.append(Setting(name=f.name, kind=kind, default=f.default, nullable=nullable, **meta))
    return tuple(out)


def problems(config: Any) -> list[str]:
    """What is wrong with each described field of a config dataclass instance."""
    found = (s.problem(getattr(config, s.name)) for s in settings_of(type(config)))
    return [p for p in found if p]


def _base_type(hint: Any) -> tuple[type, bool]:
    """bool, int, float or str from a field's annotation (`int | None` is int), and whether None is allowed."""
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union \
        else (hint,)
    kinds = [a for a in args if a is not type(None)]
    if len(kinds) != 1 or kinds[0] not in (bool, int, float, str):
        raise TypeError(f"a setting is one of bool, int, float or str, not {hint!r}")
    return kinds[0], len(args) > 1


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"from {_shown(low)} to {_shown(high)}"
    return f"at least {_shown(low)}" if low is not None else f"at most {_shown(high)}"


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)

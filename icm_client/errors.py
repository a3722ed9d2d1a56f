"""The client's errors. An APIError carries what the server said, as it said it: the API's `detail`, each field's
messages, and for a rejected file every problem with its row and field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .records import Run


class ICMClientError(Exception):
    """Every error this package raises (an unreachable server, a refused request, a failed run)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an uploaded file, located as the server located it (row: 1-based, JSONL: line)."""

    file: str
    row: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f": row {self.row}"
        if self.field is not None:
            where += f", field '{self.field}'"
        return f"{where}: {self.message}"


class APIError(ICMClientError):
    """The server answered with an error status (4xx, 5xx).

    `message` is the API's own text: its `detail`, or each refused field with its messages ("task: ...").
    `problems` lists a rejected file's problems; `fields` maps each refused field to its messages; `body` is
    the answer as the server sent it (JSON, or text when it was not JSON)."""

    def __init__(self, status: int, message: str, *, problems: Sequence[Problem] = (),
                 fields: dict[str, list[str]] | None = None, body: Any = None) -> None:
        self.status = status
        self.message = message
        self.problems = list(problems)
        self.fields = dict(fields or {})
        self.body = body
        super().__init__(status, message)

    def __str__(self) -> str:
        text = f"HTTP {self.status}: {self.message}"
        # The API's detail names the first problem only ("(and 3 more problems)"): list them all.
        if len(self.problems) > 1:
            text += "".join(f"\n  {p}" for p in self.problems)
        return text

    @classmethod
    def from_response(cls, status: int, body: Any, reason: str = "") -> APIError:
        """An error from the server's answer: DRF's shapes (`{"detail"}`, `{field: [messages]}`, with
        `problems` for a rejected file), or a body that is not JSON (a proxy's page)."""
        if isinstance(body, dict):
            problems = [Problem(str(p.get("file", "")), p.get("row"), p.get("field"), str(p.get("message", "")))
                        for p in body.get("problems") or () if isinstance(p, dict)]
            fields = {name: msgs for name, msgs in _field_messages(
                {k: v for k, v in body.items() if k not in ("detail", "problems")})}
            detail = body.get("detail")
            if isinstance(detail, str) and detail:
                message = detail
            elif fields:
                message = "; ".join(f"{name}: {' '.join(msgs)}" if name != "non_field_errors" else " ".join(msgs)
                                    for name, msgs in fields.items())
            else:
                message = reason or "error"
            return cls(status, message, problems=problems, fields=fields, body=body)
        if isinstance(body, list) and all(isinstance(m, str) for m in body) and body:  # DRF's ValidationError(["..."])
            return cls(status, " ".join(body), body=body)
        text = str(body or "").strip()
        # A page that is not the API's (a proxy's error page): its start says enough, not the whole HTML.
        message = f"{reason or 'error'}: {text[:300]}" if text else (reason or "error")
        return cls(status, message, body=body)


def _field_messages(value: Any, prefix: str = "") -> list[tuple[str, list[str]]]:
    """DRF's field errors flattened: `{"config": {"iterations": ["..."]}}` as ("config.iterations", ["..."])."""
    if isinstance(value, str):
        return [(prefix or "detail", [value])]
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return [(prefix or "detail", list(value))] if value else []
        out: list[tuple[str, list[str]]] = []
        for i, item in enumerate(value):  # a list field's items: their errors by index, empty ones skipped
            out.extend(_field_messages(item, f"{prefix}[{i}]"))
        return out
    if isinstance(value, dict):
        out = []
        for key, item in value.items():
            out.extend(_field_messages(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return [(prefix or "detail", [str(value)])] if value is not None else []


class RunFailed(ICMClientError):
    """`Client.wait` found failed runs; `runs` are all the runs waited on, as they ended."""

    def __init__(self, runs: Sequence[Run]) -> None:
        self.runs = list(runs)
        failed = [r for r in self.runs if r.status == "failed"]
        lines = [f"run {r.id} ({r.method}, seed {r.seed}): {r.error or 'failed (no message)'}" for r in failed]
        super().__init__(f"{len(failed)} of {len(self.runs)} runs failed:\n  " + "\n  ".join(lines))

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if r.status == "failed"]


class WaitTimeout(ICMClientError, TimeoutError):
    """`Client.wait` ran out of time; `runs` are the runs as last seen (some still active)."""

    def __init__(self, runs: Sequence[Run], timeout: float) -> None:
        self.runs = list(runs)
        active = [f"{r.id} ({r.status})" for r in self.runs if r.active]
        super().__init__(f"runs still active after {timeout:g} s: {', '.join(active)}")

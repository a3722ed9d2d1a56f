"""Template filters for the live run page: what a phase means to a reader, and the time since the click."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils import timezone

register = template.Library()

# The progress record's phase (the engine's event kinds, and the worker's own steps) as the page says it, and
# a finished run's status, which the page shows instead of the phase.
PHASES = {
    "queued": "Queued: waiting for a worker",
    "loading": "Loading the model",
    "init": "Initial labels",
    "iteration": "Searching (proposals and consistency fixes)",
    "batch_done": "Searching: a batch finished",
    "baseline": "Labeling",
    "done": "Search finished",
    "writing": "Writing the labels",
    "sharded": "Its shards are running",
    "ended": "Ended",
    "succeeded": "Finished",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


@register.filter
def phase_label(snap: dict) -> str:
    if snap.get("status") in ("queued", "succeeded", "failed", "cancelled"):
        return PHASES[snap["status"]]
    phase = (snap.get("progress") or {}).get("phase") or "loading"
    return PHASES.get(phase, phase)


@register.filter
def seconds_since(start: str | None, end: str | None = None) -> int | None:
    """Whole seconds from an ISO time to another (or to now): a run's time since its start was clicked."""
    if not start:
        return None
    until = datetime.fromisoformat(end) if end else timezone.now()
    return max(0, round((until - datetime.fromisoformat(start)).total_seconds()))


@register.filter
def duration(seconds: float | None) -> str:
    """Seconds as a reader counts them: 40 s, 12 min, 2.5 h."""
    if seconds is None:
        return "–"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@register.filter
def duration_range(low: float | None, high: float | None) -> str:
    """A range of durations as a reader says it: "12–20 min", "2.5–3.1 h"; one figure where both ends read
    the same (a single run priced it), never "1382.8 h–1382.8 h"."""
    a, b = duration(low), duration(high)
    if a == b:
        return a
    unit_a, unit_b = a.rsplit(" ", 1)[-1], b.rsplit(" ", 1)[-1]
    return f"{a.rsplit(' ', 1)[0]}–{b}" if unit_a == unit_b else f"{a}–{b}"


@register.filter
def negated(value: float | None) -> float | None:
    """The number with its sign turned: a signal's agreement with a labeling's mirror image."""
    return None if value is None else -float(value)

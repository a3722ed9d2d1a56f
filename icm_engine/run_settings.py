"""Every run setting in one place, and the one function that fills in what a run leaves out.

The settings are the described fields of `ICMConfig` and `BaselineConfig` (setting.py). The `icm` command's
options, the web app's run form, the API's help and the table in docs/cli.md are made from them. A run's
settings come in three layers, each filling in only what the one above left out:

1. what the user gave (an option, a form field, the API's `config`);
2. the task preset's choice for the packaged model (defaults.py: readout, context, calibration, anchor) and
   the data's size (`sized_to`: ICM's batch size and iterations);
3. the config class's own defaults (the paper's, and the official code's batch size).
"""

from __future__ import annotations

from typing import Any

from .baselines import BaselineConfig
from .defaults import resolve
from .presets import Task
from .search.config import ICMConfig, sized_to
from .setting import Setting, settings_of

ICM_SETTINGS: dict[str, Setting] = {s.name: s for s in settings_of(ICMConfig)}
BASELINE_SETTINGS: dict[str, Setting] = {s.name: s for s in settings_of(BaselineConfig)}
# ICM's description where both have a setting of that name (the readout settings are one and the same).
RUN_SETTINGS: dict[str, Setting] = {**ICM_SETTINGS, **{k: v for k, v in BASELINE_SETTINGS.items()
                                                       if k not in ICM_SETTINGS}}
METHOD_KINDS = ("icm", "baseline")


def settings_for(task: Task | dict[str, Any], n_examples: int | None, given: dict[str, Any], *,
                 method: str = "icm") -> tuple[ICMConfig | BaselineConfig, list[str]]:
    """A run's whole, checked settings: each one `given` (not None) as given, then the preset's choice and the
    data's size (`n_examples`; None: not known yet, the config's own sizes), then the config's defaults.

    `method` is "icm" or "baseline". Returns the config and the names the preset's choice supplied. A name
    the method does not take, or a value a setting does not take, is a ValueError that names it."""
    if method not in METHOD_KINDS:
        raise ValueError(f"method must be one of {', '.join(METHOD_KINDS)}")
    cls = ICMConfig if method == "icm" else BaselineConfig
    known = set(ICM_SETTINGS) if method == "icm" else set(BASELINE_SETTINGS)
    unknown = sorted(set(given) - known)
    if unknown:
        raise ValueError(f"unknown settings for {'ICM' if method == 'icm' else 'a baseline'}: {', '.join(unknown)}")
    given = {k: v for k, v in given.items() if v is not None}
    chosen, from_preset = resolve(task, given)
    if method != "icm":  # the anchor is the search's: a baseline takes the readout settings alone
        chosen = {k: v for k, v in chosen.items() if k in BASELINE_SETTINGS}
        from_preset = [k for k in from_preset if k in BASELINE_SETTINGS]
    values = {**given, **{k: v for k, v in chosen.items() if v is not None}}
    if method == "icm" and n_examples is not None:
        values = {**sized_to(n_examples), **values}
    try:
        config = cls(**values).validate()
    except TypeError as exc:  # a value of the wrong kind that a comparison met first
        raise ValueError(str(exc)) from None
    return config, from_preset


def methods_of(name: str) -> str:
    """Which runs take a setting: "ICM", "baselines" or "ICM and baselines"."""
    return " and ".join(m for m, table in (("ICM", ICM_SETTINGS), ("baselines", BASELINE_SETTINGS)) if name in table)


def settings_table() -> str:
    """The Markdown table of every run setting (docs/cli.md holds it; a test checks it is this one)."""
    lines = ["| setting | option | for | what it does |", "|---|---|---|---|"]
    for s in RUN_SETTINGS.values():
        option = f"`{s.flag}`" if s.cli else ""
        if s.kind is bool and s.cli:
            option += f" / `--no-{s.flag[2:]}`"
        lines.append(f"| `{s.name}` | {option} | {methods_of(s.name)} | {s.describe().replace('|', '/')} |")
    return "\n".join(lines)


def api_help() -> str:
    """The API's help for a run's `config`: every setting, which runs take it, and what it does."""
    each = " ".join(f"{s.name} ({methods_of(s.name)}): {s.describe()}." for s in RUN_SETTINGS.values())
    return ("The run's settings (each left out: the task preset's choice, the data's size, then the paper's; "
            "docs/cli.md). " + each)


if __name__ == "__main__":  # docs/cli.md's table: python -m icm_engine.run_settings
    print(settings_table())

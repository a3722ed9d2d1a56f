"""Label Studio tasks from label sets, as plain data (nothing here touches the database): one task per
example, its fields as `data`; ICM and baseline labels as `predictions` (their `score`: the confidence in the
label, in [0, 1]), human and gold labels as `annotations`; and the labeling config of a project that shows
them. label_studio.py reads such files back.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from django.core.exceptions import ValidationError

from .label_studio import EXACT_SCORE_KEY, LOG_ODDS_NOTE, TAG_NAME, sigmoid

_WORD = re.compile(r"^\S(?:.{0,98}\S)?$")


@dataclass(frozen=True)
class ExportOptions:
    true_choice: str = "True"
    false_choice: str = "False"
    from_name: str = "label"
    to_name: str = ""

    def word(self, value: bool) -> str:
        return self.true_choice if value else self.false_choice


def template_fields(template: str) -> list[str]:
    """The fields the prompt template shows, in order: the texts a Label Studio project shows."""
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f]
    except ValueError:
        names = []
    return list(dict.fromkeys(re.split(r"[.\[]", n)[0] for n in names if TAG_NAME.match(re.split(r"[.\[]", n)[0])))


def export_options(query: Mapping[str, Any] | None, *, fields: list[str]) -> ExportOptions:
    """The words and control names of an export; the label is attached to the last field the template
    shows (the claim being judged) unless `to_name` says otherwise."""
    query = query or {}
    got = {k: str(query.get(k) or "").strip() for k in ("true_choice", "false_choice", "from_name", "to_name")}
    errors = {}
    for k in ("true_choice", "false_choice"):
        if got[k] and not _WORD.match(got[k]):
            errors[k] = "a choice is 1 to 100 characters on one line"
    for k in ("from_name", "to_name"):
        if got[k] and not TAG_NAME.match(got[k]):
            errors[k] = "a control name is a letter or _ then up to 99 letters, digits, _, . or -"
    opts = ExportOptions(got["true_choice"] or "True", got["false_choice"] or "False", got["from_name"] or "label",
                         got["to_name"] or (fields[-1] if fields else "text"))
    if opts.true_choice == opts.false_choice:
        errors["false_choice"] = "the two choices must differ"
    if opts.from_name in fields or opts.from_name == opts.to_name:
        errors["from_name"] = "the Choices control needs a name no text field has"
    if errors:
        raise ValidationError(errors)
    return opts


def labeling_config(fields: list[str], opts: ExportOptions) -> str:
    """The labeling config of a project for these tasks: each field the template shows, and the choice."""
    shown = [(f, f) for f in fields]
    if opts.to_name not in fields:  # a name of the user's choosing, for the claim being judged
        shown.append((opts.to_name, fields[-1] if fields else "text"))
    texts = [f"  <Text name={quoteattr(name)} value={quoteattr('$' + f)}/>" for name, f in shown]
    return "\n".join([
        "<View>", *texts,
        f"  <Choices name={quoteattr(opts.from_name)} toName={quoteattr(opts.to_name)} choice=\"single\" "
        "showInline=\"true\">",
        f"    <Choice value={quoteattr(opts.true_choice)}/>", f"    <Choice value={quoteattr(opts.false_choice)}/>",
        "  </Choices>", "</View>", ""])


def scores_are_log_odds(*, from_run: bool, method: str, scores: Iterable[float | None]) -> bool:
    """A run's ICM and baseline scores are log-odds of True against False; a consensus set's are the share of
    seeds that agree, already a confidence. Any other set's scores count as log-odds where one is outside
    [0, 1], else as confidences."""
    if from_run:
        return method != "icm-consensus"
    return any(s is not None and not 0 <= s <= 1 for s in scores)


def model_version_of(*, name: str, version: int, kind: str, configuration: Mapping[str, Any], model: str,
                     run: int | None, log_odds: bool) -> str:
    """What a prediction names its label set by: readable, unique per set, and read back on import."""
    config = configuration.get("config") if isinstance(configuration.get("config"), dict) else {}
    details = [kind]
    if run is not None:
        details.append(f"run {run}")
    if isinstance(configuration.get("consensus"), dict):
        details.append(f"consensus of runs {', '.join(map(str, configuration['consensus'].get('runs', [])))}")
    details += [f"{k} {config[k]}" for k in ("readout", "context") if config.get(k) not in (None, "")]
    if configuration.get("seed") is not None:
        details.append(f"seed {configuration['seed']}")
    if model:
        details.append(f"model {model}")
    if log_odds:
        details.append(LOG_ODDS_NOTE)
    # Brackets and semicolons inside a detail (a model's path) would make it unreadable back.
    shown = "; ".join(re.sub(r"[\[\];]", "_", str(d)) for d in details)
    return f"{name} v{version} [{shown}]"


@dataclass
class ExportedSet:
    labels: Mapping[int, tuple[bool, float | None]]  # example key -> (label, stored score)
    model_version: str = ""  # a prediction set (ICM, baseline); else annotations
    log_odds: bool = False
    ground_truth: bool = False
    email: str = ""  # the annotator's: Label Studio gives the annotation to its member of that email


def _region(value: bool, opts: ExportOptions) -> dict[str, Any]:
    return {"from_name": opts.from_name, "to_name": opts.to_name, "type": "choices",
            "value": {"choices": [opts.word(value)]}}


def task_of(key: int, data: dict[str, Any], sets: list[ExportedSet], opts: ExportOptions) -> dict[str, Any]:
    predictions, annotations = [], []
    for s in sets:
        if key not in s.labels:
            continue
        value, score = s.labels[key]
        region = _region(value, opts)
        if s.model_version:
            prediction: dict[str, Any] = {"model_version": s.model_version, "result": [region]}
            if score is not None:
                prediction["score"] = sigmoid(score if value else -score) if s.log_odds else score
                if s.log_odds:
                    region[EXACT_SCORE_KEY] = score
            predictions.append(prediction)
        else:
            # Label Studio takes an imported annotation for ground truth unless told otherwise.
            annotation: dict[str, Any] = {"result": [region], "ground_truth": s.ground_truth, "was_cancelled": False}
            if s.email:
                annotation["completed_by"] = {"email": s.email}
            annotations.append(annotation)
    return {"data": data, "annotations": annotations, "predictions": predictions}


def render(tasks: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A JSON array streamed one task at a time."""
    yield "["
    for n, task in enumerate(tasks):
        yield ("\n" if n == 0 else ",\n") + json.dumps(task, ensure_ascii=False)
    yield "\n]\n"

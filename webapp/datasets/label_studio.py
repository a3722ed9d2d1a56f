"""Label Studio exports read into label sets, as plain data: nothing here touches the database.

Reading: a Label Studio export (the JSON array of tasks its JSON export writes) of a project with one
`Choices` control of two choices. Each annotator's annotations become a human label set, each prediction
`model_version` a model label set with its scores, `ground_truth` annotations gold. Tasks are matched to
examples by `data.id` (our export writes it), else by the task's own `id`.

Writing them is label_studio_export.py's.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

from django.conf import settings

from icm_engine.facade import MAX_PROBLEMS, DataError, Problem, parse_label

from .parsing import ParsedDataset, check_size, normalise_id, parse_dataset_file, safe_filename

# Where a set's scores are log-odds (of True against False), the prediction's `score` is P(label), and
# the region keeps the stored score under this key too: P(label) near 0 or 1 cannot give the log-odds back
# exactly (Label Studio stores a result as it is given, so the key survives its export).
EXACT_SCORE_KEY = "icm_score"
LOG_ODDS_NOTE = "score P(label) from log-odds"
# "<name> v<version> [<kind>; run 5; readout split; seed 0; ...]": readable, unique per set, and read back.
_MODEL_VERSION = re.compile(r"^(?P<name>.+) v(?P<version>\d+) \[(?P<kind>icm|baseline)(?P<details>(?:; [^\[\]]*)?)\]$",
                            re.DOTALL)
TAG_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
MAX_SETS = 100  # each annotator and model version is a label set; a file naming more is refused


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def logit(p: float) -> float:
    p = min(max(p, 1e-15), 1 - 1e-15)  # a confidence of exactly 0 or 1 has no finite log-odds
    return math.log(p) - math.log1p(-p)


@dataclass
class ImportedSet:
    kind: str  # gold, human, icm or baseline
    name: str
    # example id -> (label, score, the entry's order): the latest entry of one annotator or model wins
    labels: dict[str, tuple[bool, float | None, tuple]] = field(default_factory=dict)
    annotator: str = ""  # as Label Studio names them: the email where the export gives it
    model_version: str = ""

    @property
    def configuration(self) -> dict[str, Any]:
        if self.kind == "gold":
            return {"from": "label-studio"}
        if self.kind == "human":
            return {"from": "label-studio", "completed_by": self.name}
        return {"from": "label-studio", "model_version": self.model_version}


@dataclass
class ParsedExport:
    filename: str
    rows: list[dict[str, Any]]  # each task's data with its example id: the examples of a new dataset
    label_sets: list[ImportedSet]
    skipped: dict[str, int]

    def summary(self) -> list[dict[str, Any]]:
        return [{"kind": s.kind, "name": s.name, "labels": len(s.labels),
                 "true": sum(1 for v, _, _ in s.labels.values() if v)} for s in self.label_sets]


def looks_like_export(data: bytes) -> bool:
    """A JSON array of objects that each have a `data` object and annotations or predictions."""
    if not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        return False
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return False
    return isinstance(doc, list) and bool(doc) and all(
        isinstance(t, dict) and isinstance(t.get("data"), dict) and ("annotations" in t or "predictions" in t)
        for t in doc)


def _tasks(filename: str, data: bytes) -> list[dict[str, Any]]:
    def fail(row: int | None, fld: str | None, message: str) -> DataError:
        return DataError([Problem(filename, row, fld, message)])

    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise fail(None, None, "the file is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise fail(None, None, f"not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); a Label Studio "
                               "export is a JSON array of tasks") from None
    except RecursionError:
        raise fail(None, None, "the JSON is nested too deeply") from None
    if not isinstance(doc, list) or not doc:
        raise fail(None, None, "a Label Studio export is a non-empty JSON array of tasks")
    if len(doc) > settings.ICM_MAX_ROWS:
        raise fail(None, None, f"the file holds {len(doc)} tasks; the limit is {settings.ICM_MAX_ROWS}")
    problems = []
    for row, task in enumerate(doc, start=1):
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            problems.append(Problem(filename, row, "data", "a task must be an object with a `data` object (the "
                                                            "example's fields)"))
        else:
            problems += [Problem(filename, row, key, f"`{key}` must be a list")
                         for key in ("annotations", "predictions") if task.get(key) is not None
                         and not isinstance(task[key], list)]
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise DataError(problems[:MAX_PROBLEMS])
    return doc


def _clean(text: Any) -> str:
    """A name as stored: without control characters (PostgreSQL refuses NUL) or lone surrogates."""
    return re.sub(r"[\x00-\x1f\x7f\ud800-\udfff]", "", str(text)).strip()


def _annotator(completed_by: Any) -> tuple[str, str]:
    """The set's name and the email to find a member by. Label Studio's plain export gives the user's id;
    its export with `annotations__completed_by` expanded gives id, email and names."""
    if isinstance(completed_by, dict):
        email = _clean(completed_by.get("email") or "")
        names = " ".join(_clean(completed_by.get(k) or "") for k in ("first_name", "last_name")).strip()
        return (email or names or f"Label Studio user {_clean(completed_by.get('id'))}")[:200], email
    if isinstance(completed_by, int) and not isinstance(completed_by, bool):
        return f"Label Studio user {completed_by}", ""
    return "Label Studio annotator", ""


def read_model_version(model_version: str) -> tuple[str, str, bool]:
    """(kind, set name, scores are P(label) from log-odds): ours as `model_version_of` writes it; any other
    model's predictions are a baseline, named by their model version."""
    found = _MODEL_VERSION.match(model_version)
    if found:
        return found["kind"], found["name"][:200], LOG_ODDS_NOTE in found["details"]
    return "baseline", (model_version or "undefined")[:200], False


@dataclass
class _Entry:
    row: int
    field: str
    task: str
    key: tuple[str, str]  # (kind, name) of the set
    example: str
    word: str
    score: float | None
    exact: Any
    order: tuple
    who: str  # the annotator's email (human), or the prediction's model_version


class _Reader:
    def __init__(self, filename: str, from_name: Any) -> None:
        self.filename, self.from_name = filename, from_name
        self.problems: list[Problem] = []
        self.entries: list[_Entry] = []
        self.skipped = {"cancelled": 0, "predictions_by_id": 0}

    def problem(self, row: int | None, fld: str | None, message: str) -> None:
        self.problems.append(Problem(self.filename, row, fld, message))

    def choice(self, row: int, task: str, item: dict, path: str) -> tuple[str, dict, str] | None:
        """The one choice an annotation or prediction makes in the label's Choices control, if any."""
        result = item.get("result")
        if result is None:
            return None
        if not isinstance(result, list):
            self.problem(row, f"{path}.result", f"task {task}: `result` must be a list")
            return None
        regions = [(k, r) for k, r in enumerate(result) if isinstance(r, dict)
                   and str(r.get("type", "")).lower() == "choices" and r.get("from_name") == self.from_name]
        if not regions:
            return None
        k, region = regions[-1]
        where = f"{path}.result[{k}].value.choices"
        choices = region.get("value", {}).get("choices") if isinstance(region.get("value"), dict) else None
        if len(regions) > 1:
            self.problem(row, where, f"task {task}: {len(regions)} results for the control {self.from_name!r}")
        elif not (isinstance(choices, list) and len(choices) == 1 and isinstance(choices[0], str)):
            self.problem(row, where, f"task {task}: expected exactly one choice, got {choices!r}")
        else:
            return choices[0], region, where
        return None

    def read(self, row: int, task: dict, example: str) -> None:
        task_name = str(task.get("id", row))
        for j, ann in enumerate(task.get("annotations") or []):
            if not isinstance(ann, dict):
                self.problem(row, f"annotations[{j}]", f"task {task_name}: an annotation must be an object")
                continue
            if ann.get("was_cancelled"):  # a skipped task: the annotator gave no label
                self.skipped["cancelled"] += 1
                continue
            found = self.choice(row, task_name, ann, f"annotations[{j}]")
            if found:
                name, email = ("gold", "") if ann.get("ground_truth") else _annotator(ann.get("completed_by"))
                self.add(found, ann, _Entry(row, "", task_name, ("gold" if ann.get("ground_truth") else "human", name),
                                            example, "", None, None, (), email))
        for j, pred in enumerate(task.get("predictions") or []):
            if not isinstance(pred, dict):  # Label Studio's plain export lists predictions by id only
                self.skipped["predictions_by_id"] += 1
                continue
            found = self.choice(row, task_name, pred, f"predictions[{j}]")
            score = pred.get("score")
            if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))
                                      or not math.isfinite(score)):
                self.problem(row, f"predictions[{j}].score", f"task {task_name}: score {score!r} is not a number")
            elif found:
                model_version = _clean(pred.get("model_version") or "") or "undefined"
                kind, name, _ = read_model_version(model_version)
                self.add(found, pred, _Entry(row, "", task_name, (kind, name), example, "", score, None, (),
                                             model_version))

    def add(self, found: tuple[str, dict, str], item: dict, entry: _Entry) -> None:
        entry.word, region, entry.field = found
        entry.exact = region.get(EXACT_SCORE_KEY)
        # The latest of one annotator's (or model's) entries for a task: by Label Studio's timestamps, then
        # its ids, then the order in the file.
        entry.order = (str(item.get("updated_at") or item.get("created_at") or ""),
                       item.get("id") if isinstance(item.get("id"), int) else 0, len(self.entries))
        self.entries.append(entry)


def _choice_values(entries: list[_Entry], true_choice: str, filename: str) -> dict[str, bool]:
    words = list(dict.fromkeys(e.word for e in entries))

    def at(word: str) -> _Entry:
        return next(e for e in entries if e.word == word)

    if len(words) > 2:
        e = at(words[2])
        raise DataError([Problem(filename, e.row, e.field, f"task {e.task}: a third choice {e.word!r} besides "
                                 f"{words[0]!r} and {words[1]!r}; a label here is one of two choices")])
    if true_choice:
        others = [w for w in words if w != true_choice]
        if len(others) > 1:
            e = at(others[1])
            raise DataError([Problem(filename, e.row, e.field, f"task {e.task}: the choice {e.word!r} is neither the "
                                     f"true choice {true_choice!r} nor the other choice {others[0]!r}")])
        return {w: w == true_choice for w in words}
    try:
        values = {w: parse_label(w) for w in words}
    except ValueError:
        values = {}
    if len(values) != len(words) or len(set(values.values())) != len(values):
        raise DataError([Problem(filename, None, "true_choice", "say which choice means True (true_choice): the "
                                 f"file's choices are {', '.join(map(repr, words))}")])
    return values


def _stored_score(entry: _Entry, value: bool) -> float | None:
    if entry.key[0] not in ("icm", "baseline") or not read_model_version(entry.who)[2]:
        return entry.score
    exact = entry.exact
    if isinstance(exact, (int, float)) and not isinstance(exact, bool) and math.isfinite(exact):
        return float(exact)
    if entry.score is None:
        return None
    return logit(entry.score) if value else -logit(entry.score)


def parse_export(filename: str, data: bytes, *, true_choice: str = "", from_name: str = "",
                 known_ids: set[str] | None = None) -> ParsedExport:
    """Read a Label Studio export. `known_ids`: the dataset's example ids (an import into it), or None (the
    examples of a new dataset). All or nothing: any problem raises DataError naming its task and field."""
    filename = safe_filename(filename)
    check_size(filename, len(data))
    tasks = _tasks(filename, data)
    # A control's name is text; any other value names no control (and could not be a key here).
    names = list(dict.fromkeys(r.get("from_name") for t in tasks for key in ("annotations", "predictions")
                               for item in t.get(key) or [] if isinstance(item, dict)
                               for r in (item.get("result") if isinstance(item.get("result"), list) else [])
                               if isinstance(r, dict) and str(r.get("type", "")).lower() == "choices"
                               and isinstance(r.get("from_name"), str)))
    if from_name and names and from_name not in names:
        raise DataError([Problem(filename, None, "from_name", f"no Choices result is named {from_name!r}; the "
                                                              f"file's: {', '.join(map(repr, names))}")])
    if not from_name and len(names) > 1:
        raise DataError([Problem(filename, None, "from_name", "the file has several Choices controls ("
                                 f"{', '.join(map(repr, names))}): say which holds the label (from_name)")])
    reader = _Reader(filename, from_name or (names[0] if names else ""))
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for row, task in enumerate(tasks, start=1):
        own = task["data"].get("id")
        fld, raw = ("data.id", own) if own not in (None, "") else ("id", task.get("id"))
        example = normalise_id(raw)
        if example is not None and known_ids is None:
            example = str(raw)  # a new dataset stores the id as the file gives it (an apostrophe kept)
        if example is None:
            reader.problem(row, fld, "the task has no example id (data.id, else the task's id), or it is neither "
                                     "a string nor an integer")
        elif known_ids is not None and example not in known_ids:
            reader.problem(row, fld, f"unknown example id {example!r}: the dataset has no such example")
        elif example in seen:
            reader.problem(row, fld, f"duplicate example id {example!r} (first at task {seen[example]})")
        else:
            seen[example] = row
            rows.append({"id": raw, **{k: v for k, v in task["data"].items() if k != "id"}})
            reader.read(row, task, example)
        if len(reader.problems) >= MAX_PROBLEMS:
            break
    if reader.problems:
        raise DataError(reader.problems[:MAX_PROBLEMS])
    values = _choice_values(reader.entries, true_choice, filename)
    sets: dict[tuple[str, str], ImportedSet] = {}
    for e in reader.entries:
        s = sets.get(e.key)
        if s is None:
            if len(sets) >= MAX_SETS:
                raise DataError([Problem(filename, e.row, e.field, f"more than {MAX_SETS} annotators and model "
                                                                   "versions; import fewer at a time")])
            s = sets[e.key] = ImportedSet(e.key[0], e.key[1])
            s.model_version, s.annotator = (e.who, "") if e.key[0] in ("icm", "baseline") else ("", e.who)
        value = values[e.word]
        if e.example not in s.labels or s.labels[e.example][2] < e.order:
            s.labels[e.example] = (value, _stored_score(e, value), e.order)
    ordered = sorted(sets.values(), key=lambda s: ({"gold": 0, "human": 1}.get(s.kind, 2),
                                                   s.name if s.kind == "human" else ""))
    return ParsedExport(filename, rows, ordered, reader.skipped)


@dataclass
class LabelStudioDataset(ParsedDataset):
    """A dataset file read from a Label Studio export: its examples, and the label sets to write beside them."""

    found: ParsedExport | None = None

    def preview(self, sample: int = 5) -> dict[str, Any]:
        return {**super().preview(sample), "label_sets": self.found.summary() if self.found else []}


def parse_dataset_export(filename: str, data: bytes, *, task: str, template: str | None = None,
                         consistency: str | None = None, true_choice: str = "",
                         from_name: str = "") -> LabelStudioDataset:
    """A new dataset from a Label Studio export: its tasks' data as the rows of any upload (the task preset's
    fields must be there; problems name the task's row), and its label sets."""
    found = parse_export(filename, data, true_choice=true_choice, from_name=from_name)
    name = found.filename if found.filename.lower().endswith(".json") else found.filename + ".json"
    # The rows are part of the file, so they fit its size cap where non-ASCII text is kept as it is (escaped
    # only where it cannot be UTF-8: a lone surrogate the file wrote as an escape).
    try:
        rows = json.dumps(found.rows, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        rows = json.dumps(found.rows).encode()
    parsed = parse_dataset_file(name, rows, task, template, consistency)
    return LabelStudioDataset(**{f.name: getattr(parsed, f.name) for f in fields(parsed)}, found=found)

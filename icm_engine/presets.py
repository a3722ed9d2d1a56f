"""Task presets: prompt formats, label words and the label-free consistency rule of each task.

Prompts follow the official code (`Question: ...\\nClaim: ...\\nI think this claim is`), except that
the trailing space moves into the label words (" True"/" False" are single tokens for the
tokenizers we use, while "is " + "True" would split differently).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .examples import DataError, Example, LoadedData, Problem, build_examples, limit_examples, read_rows

CONSISTENCY_MODES = ("none", "unique", "asymmetric", "key")


@dataclass(frozen=True)
class Task:
    """How examples of one kind are shown to the model and how their labels must agree.

    `template` renders the verdict prompt; the model's next token after it is read for
    `label_words` (index 0 means True). The channel readout renders `channel_prefix` with
    `{verbalizer}` and scores the likelihood of `channel_target` after it. The likelihood anchor
    scores `channel_target` after `likelihood_prefix` (no label, no demonstrations).

    Consistency (label-free, never from gold):
    - `none`: no rule.
    - `unique`: at most one example per group may be True (multiple choice with one answer).
    - `asymmetric`: a group holds the two orders of one comparison; exactly one is True.
    - `key`: the official rule over a label-free key field (`key_field`): same key => same
      label, different keys => not both True.
    """

    name: str
    template: str
    label_words: tuple[str, str] = (" True", " False")
    channel_prefix: str = "{verbalizer}:"
    channel_target: str = " {choice}"
    verbalizers: tuple[str, str] = ("True", "False")
    split_header: str = "{verbalizer} statements:\n"
    likelihood_prefix: str = "Question: {question}\nAnswer:"
    consistency: str = "none"
    key_field: str | None = None
    strip_newlines: tuple[str, ...] = ()
    instruction: str = ""

    def _values(self, ex: Example) -> dict[str, str]:
        values = {k: ("" if v is None else str(v)) for k, v in ex.fields.items()}
        for name in self.strip_newlines:
            if name in values:
                values[name] = re.sub(r"\s*[\r\n]+\s*", " ", values[name])
        return values

    def render(self, ex: Example) -> str:
        return self.template.format_map(self._values(ex))

    def render_target(self, ex: Example) -> str:
        """The claim text itself (the channel target, trimmed): one line of the split readout's context."""
        return self.channel_target.format_map(self._values(ex)).strip()

    def render_channel(self, ex: Example, label: bool) -> tuple[str, str]:
        values = self._values(ex)
        values["verbalizer"] = self.verbalizers[0 if label else 1]
        return self.channel_prefix.format_map(values), self.channel_target.format_map(values)

    def render_likelihood(self, ex: Example) -> tuple[str, str]:
        """The claim after a label-free prefix: what the likelihood anchor scores."""
        values = self._values(ex)
        return self.likelihood_prefix.format_map(values), self.channel_target.format_map(values)

    def consistency_key(self, ex: Example) -> str | None:
        """The label-free key the rule compares; computed from the example's own text only."""
        if self.consistency == "key":
            assert self.key_field is not None
            return normalise_answer(ex.text(self.key_field))
        if self.consistency == "unique":
            return f"uid{ex.uid}"
        if self.consistency == "asymmetric":
            # Orient each row by comparing its two texts: (A, B) and its swapped copy (B, A) get
            # complementary keys without looking at which response is better.
            a, b = ex.text(self.fields_for_order[0]), ex.text(self.fields_for_order[1])
            return "A>B" if a <= b else "B>A"
        return None

    @property
    def fields_for_order(self) -> tuple[str, str]:
        return ("choice", "choice_2")

    def required_fields(self, readout: str = "verdict", anchor: bool = False) -> tuple[str, ...]:
        """The fields every row must have for this task and readout (and the likelihood anchor)."""
        needed = list(template_fields(self.template))
        if readout in ("channel", "split"):
            needed += template_fields(self.channel_prefix) + template_fields(self.channel_target)
        if anchor:
            needed += template_fields(self.likelihood_prefix) + template_fields(self.channel_target)
        if self.key_field:
            needed.append(self.key_field)
        if self.consistency == "asymmetric":
            needed += self.fields_for_order
        return tuple(dict.fromkeys(needed))

    def likelihood_fields(self) -> tuple[str, ...]:
        """The fields the likelihood anchor's prompt reads (its prefix and the claim)."""
        return tuple(dict.fromkeys(template_fields(self.likelihood_prefix) + template_fields(self.channel_target)))

    def describe(self) -> dict[str, Any]:
        return {
            "task": self.name,
            "template": self.template,
            "label_words": list(self.label_words),
            "consistency": self.consistency,
            "key_field": self.key_field,
            "channel_prefix": self.channel_prefix,
            "channel_target": self.channel_target,
            "verbalizers": list(self.verbalizers),
            "split_header": self.split_header,
            "likelihood_prefix": self.likelihood_prefix,
        }


def normalise_answer(text: str) -> str:
    """Canonical form of a final answer ("1,000" == "1000" == "1000.0"; trailing punctuation dropped)."""
    t = text.strip().strip(string.punctuation.replace("-", "").replace(".", "") + " ").rstrip(".")
    t = t.replace(",", "").replace("$", "").strip()
    try:
        num = float(t)
    except ValueError:
        return t.lower()
    return str(int(num)) if num.is_integer() else repr(num)


_QA = "Question: {question}\nClaim: {choice}\nI think this claim is"
# The likelihood of the claim alone: after "Question: Which is larger, A or B?" it follows which option the
# question names first, not the truth (docs/defaults.md), and names such a set's classes backwards.
_CLAIM_ALONE = "Claim:"

PRESETS: dict[str, Task] = {
    "truthfulqa": Task(
        name="truthfulqa",
        template=_QA,
        channel_prefix="Question: {question}\n{verbalizer} answer:",
        channel_target=" {choice}",
        likelihood_prefix=_CLAIM_ALONE,
        # The official key leaks gold labels; no label-free rule exists for TruthfulQA claims.
        consistency="none",
    ),
    "gsm8k": Task(
        name="gsm8k",
        template="Question: {question}\nClaim: {cot}\nI think this claim is",
        channel_prefix="Question: {question}\n{verbalizer} solution:",
        channel_target=" {cot}",
        consistency="key",
        key_field="answer",
    ),
    "alpaca": Task(
        name="alpaca",
        template=(
            "Human: {question}\nResponse 1: {choice}\nResponse 2: {choice_2}\n"
            "Claim: Response 1 is more helpful and harmless than Response 2.\nI think this claim is"
        ),
        channel_prefix="Human: {question}\nResponse 2: {choice_2}\n{verbalizer} better response:",
        channel_target=" {choice}",
        verbalizers=("Better", "Worse"),
        likelihood_prefix="Human: {question}\nAssistant:",
        consistency="asymmetric",
        strip_newlines=("choice", "choice_2"),
    ),
    "claims": Task(
        name="claims",
        template=_QA,
        channel_prefix="{verbalizer}:",
        channel_target=" {choice}",
        likelihood_prefix=_CLAIM_ALONE,
        consistency="none",
    ),
}


def template_fields(template: str) -> tuple[str, ...]:
    """The fields a template names. Only plain `{field}`: a format spec or a conversion (`{q:>5000000}`,
    `{q:%}`, `{q!r}`) could make a prompt of any size or fail on the first example, and dataset text is
    untrusted."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"template: {exc} (write a literal brace as {{{{ or }}}})") from None
    names = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"template field {{{name}}} must be a plain field name")
        if spec or conversion:
            raise ValueError(f"template field {{{name}{'!' + conversion if conversion else ''}"
                             f"{':' + spec if spec else ''}}} takes no format: write {{{name}}}")
        names.append(name)
    return tuple(dict.fromkeys(n for n in names if n != "verbalizer"))


def get_task(
    name: str,
    template: str | None = None,
    consistency: str | None = None,
    label_words: Sequence[str] | None = None,
    channel_prefix: str | None = None,
    channel_target: str | None = None,
    likelihood_prefix: str | None = None,
) -> Task:
    """A preset, optionally customised (`claims` takes any template over any fields).

    `consistency` is one of none, unique, asymmetric or key:FIELD.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown task preset {name!r}; choose one of {', '.join(PRESETS)}")
    task = PRESETS[name]
    changes: dict[str, Any] = {}
    if template is not None:
        template = template.replace("\\n", "\n")
        changes["template"] = template
    if channel_prefix is not None:
        changes["channel_prefix"] = channel_prefix.replace("\\n", "\n")
    if channel_target is not None:
        changes["channel_target"] = channel_target.replace("\\n", "\n")
    if likelihood_prefix is not None:
        changes["likelihood_prefix"] = likelihood_prefix.replace("\\n", "\n")
    if label_words is not None:
        if len(label_words) != 2:
            raise ValueError("label words are two: the True word, then the False word")
        changes["label_words"] = tuple(label_words)
    if consistency is not None:
        mode, _, key = consistency.partition(":")
        if mode not in CONSISTENCY_MODES:
            raise ValueError(f"unknown consistency {consistency!r}; use none, unique, asymmetric or key:FIELD")
        if mode == "key" and not key:
            raise ValueError("consistency key needs a field: key:FIELD")
        changes["consistency"] = mode
        changes["key_field"] = key or None
    task = replace(task, **changes)
    task.required_fields("verdict")  # validates the templates now, not at the first prompt
    return task


def load_dataset(
    path: str | Path, task: Task, limit: int | None = None, data: bytes | None = None, readout: str = "verdict",
    anchor: bool = False, rows: list[dict[str, Any]] | None = None,
) -> LoadedData:
    """Load a file for a task: validate the task's fields, then attach label-free consistency keys. `rows`,
    where a caller has read the file already, are used as they are."""
    name = Path(path).name
    if rows is None:
        rows = read_rows(path, data)
    # A key field must be present but may be empty (the released GSM8K file has a solution with no answer).
    loaded = build_examples(rows, name, task.required_fields(readout, anchor), may_be_empty=[task.key_field or ""])
    loaded = limit_examples(loaded, limit)
    keyed = [replace(ex, key=task.consistency_key(ex)) for ex in loaded.examples]
    if task.consistency == "asymmetric":
        sizes: dict[str, int] = {}
        for ex in keyed:
            sizes[ex.group] = sizes.get(ex.group, 0) + 1
        bad = [ex for ex in keyed if sizes[ex.group] > 2]
        if bad:
            raise DataError([Problem(name, bad[0].uid + 1, "consistency_id",
                                     "an asymmetric comparison group holds more than two rows")])
    return LoadedData(keyed, loaded.gold, loaded.source)

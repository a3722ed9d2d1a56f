"""Reads for review: disagreement queues, items with their context, spot-check results, the agreement report."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Q, QuerySet, Subquery
from django.http import Http404

from icm_engine.facade import ConsistencyRule, EngineExample, get_task
from webapp.datasets.models import Dataset, Example, Label, LabelSet, LabelSetKind, LabelSetSource
from webapp.datasets.selectors import User, dataset_label_sets

from . import stats
from .models import GoldCorrection, SpotCheck, SpotCheckAnswer, SpotCheckItem, Verdict, VerdictKind


def _labels(label_set: LabelSet) -> dict[int, bool]:
    return dict(Label.objects.filter(label_set=label_set).values_list("example_id", "value"))


def readable_label_set(user: User, dataset: Dataset, pk: Any) -> LabelSet:
    try:
        return dataset_label_sets(user, dataset).get(pk=pk)
    except (LabelSet.DoesNotExist, ValueError, TypeError):
        raise Http404("No such label set in this dataset.") from None


def chosen_sets(sets: list[LabelSet], model_id: str | None, gold_id: str | None,
                human_ids: list[str]) -> tuple[LabelSet | None, LabelSet | None, list[LabelSet]]:
    """The sets a review page compares, from the user's readable sets of the dataset (read once by the
    page): those named, else the latest ICM set and the latest gold set. A name not among them is a 404."""
    by_pk = {str(ls.pk): ls for ls in sets}

    def named(raw: str) -> LabelSet:
        if raw not in by_pk:
            raise Http404("No such label set in this dataset.")
        return by_pk[raw]

    latest = sorted(sets, key=lambda ls: (ls.created, ls.pk), reverse=True)
    model = named(model_id) if model_id else next((ls for ls in latest if ls.kind == LabelSetKind.ICM), None)
    gold = named(gold_id) if gold_id else next((ls for ls in latest if ls.kind == LabelSetKind.GOLD), None)
    return model, gold, [named(h) for h in human_ids if h]


def _mark(value: bool | None) -> str:
    return "-" if value is None else ("T" if value else "F")


@dataclass
class Comparison:
    """Examples labeled by the model set and gold, with every compared set's label, in contingency cells."""

    model: LabelSet
    gold: LabelSet
    humans: list[LabelSet]
    labels: dict[int, dict[int, bool]] = field(default_factory=dict)  # label set pk -> example pk -> value
    scores: dict[int, float | None] = field(default_factory=dict)  # example pk -> the model set's score
    cells: dict[str, list[int]] = field(default_factory=dict)  # cell key -> example pks, most informative first
    names: dict[int, str] = field(default_factory=dict)  # example pk -> its external id (for the queue listing)

    @property
    def sets(self) -> list[LabelSet]:
        return [self.model, self.gold, *self.humans]

    def cell_of(self, example_id: int) -> str:
        return "".join(_mark(self.labels[ls.pk].get(example_id)) for ls in self.sets)

    def cell_rows(self) -> list[dict[str, Any]]:
        rows = []
        for key in sorted(self.cells, key=lambda k: (k[0] == k[1], k)):
            rows.append({"key": key, "count": len(self.cells[key]), "disagree": key[0] != key[1],
                         "values": [{"set": ls, "mark": key[i]} for i, ls in enumerate(self.sets)]})
        return rows


COMPARISON_TTL_S = 600
log = logging.getLogger(__name__)


def compare(model: LabelSet, gold: LabelSet, humans: list[LabelSet]) -> Comparison:
    """The comparison of these sets. Every page of the review queue needs it, and it reads every label of
    every set, so it is cached under the sets' revisions: a write to any of their labels makes a new key."""
    comp = Comparison(model, gold, humans)
    key = "review:comparison:v2:" + ":".join(f"{ls.pk}.{ls.revision}" for ls in comp.sets)
    try:
        cached = cache.get(key)
    except Exception:  # the cache (Redis) down: the page is computed, not refused
        log.warning("review comparison cache unavailable", exc_info=True)
        cached = None
    if cached is not None:
        comp.labels, comp.scores, comp.cells, comp.names = cached
        return comp
    _fill(comp)
    try:
        cache.set(key, (comp.labels, comp.scores, comp.cells, comp.names), COMPARISON_TTL_S)
    except Exception:
        log.warning("review comparison not cached", exc_info=True)
    return comp


def _fill(comp: Comparison) -> None:
    model, gold, humans = comp.model, comp.gold, comp.humans
    model_labels = Label.objects.filter(label_set=model).values_list("example_id", "value", "score",
                                                                     "example__external_id")
    comp.labels = {model.pk: {}}
    for ex, value, score, name in model_labels:
        comp.labels[model.pk][ex], comp.scores[ex], comp.names[ex] = value, score, name
    for ls in [gold, *humans]:
        comp.labels[ls.pk] = _labels(ls)
    both = [ex for ex in comp.labels[model.pk] if ex in comp.labels[gold.pk]]
    cells: dict[str, list[int]] = defaultdict(list)
    for ex in both:
        cells[comp.cell_of(ex)].append(ex)
    # Most informative first: where the model is most confident (|leave-one-out score|), a disagreement
    # with gold is most likely a gold error, or a confident model error.
    for _key, members in cells.items():
        members.sort(key=lambda ex: (-abs(comp.scores.get(ex) or 0.0), ex))
    comp.cells = dict(cells)


def example_text(example: Example, shared: frozenset[str] = frozenset()) -> str:
    """The example's own text fields, without its id and group (for compact listings); `shared`: fields
    left out because every member of its group has the same value there."""
    skip = {"id", "consistency_id", "candidate_label", "confidence", *shared}
    return " · ".join(str(v) for k, v in example.fields.items() if k not in skip and v not in (None, ""))


def shared_fields(members: list[Example]) -> frozenset[str]:
    """The fields every member of a group has alike (a TruthfulQA group's question): its table shows what
    differs, so four answers to one long question do not all read as the question's first 160 characters."""
    if len(members) < 2:
        return frozenset()
    first = members[0].fields
    alike = frozenset(k for k, v in first.items()
                      if k not in ("id", "consistency_id") and all(m.fields.get(k) == v for m in members[1:]))
    return alike if any(example_text(m, alike) for m in members) else frozenset()


def item_context(comp: Comparison, dataset: Dataset, example_id: int) -> dict[str, Any]:
    """One queue item: its fields, its group's siblings with every compared label, rule conflicts, verdicts.
    The item and its group are read in one query (every step through a queue reads one)."""
    # No ordering in the subquery: Example's default one joined the dataset table for nothing.
    group = Example.objects.filter(pk=example_id, dataset=dataset).order_by().values("group")[:1]
    members = list(Example.objects.filter(dataset=dataset, group=Subquery(group)).defer("search_text")
                   .order_by("position"))
    example = next((m for m in members if m.pk == example_id), None)
    if example is None:
        raise Http404("No such example in this dataset.")
    engine = [EngineExample(uid=i, id=m.external_id, fields={}, group=m.group, key=m.consistency_key)
              for i, m in enumerate(members)]
    rule = ConsistencyRule(engine, dataset.consistency.partition(":")[0])
    model_labels = [comp.labels[comp.model.pk].get(m.pk) for m in members]
    me = next(i for i, m in enumerate(members) if m.pk == example.pk)
    conflicts = [
        {"with": members[c.j if c.i == me else c.i].external_id, "kind": c.kind}
        for c in rule.conflicts(model_labels) if me in (c.i, c.j)
    ]
    alike = shared_fields(members)
    siblings = [{"example": m, "text": example_text(m, alike),
                 "labels": [comp.labels[ls.pk].get(m.pk) for ls in comp.sets],
                 "score": comp.scores.get(m.pk), "is_item": m.pk == example.pk} for m in members]
    return {
        "example": example, "shared": sorted(alike),
        "labels": [{"set": ls, "value": comp.labels[ls.pk].get(example.pk)} for ls in comp.sets],
        "score": comp.scores.get(example.pk),
        "siblings": siblings,
        "conflicts": conflicts,
        "rule": dataset.consistency,
        "verdicts": (Verdict.objects.filter(example=example).select_related("user")
                     .only("verdict", "note", "created", "retracted", "user__username").order_by("created")),
    }


def gold_wrong(dataset: Dataset) -> QuerySet:
    """The examples whose standing (not retracted) verdicts all say gold is wrong, as `example_id` rows:
    decided in the database (the queue page counts them on every request)."""
    standing = Verdict.objects.filter(dataset=dataset, retracted__isnull=True).values("example_id")
    return standing.annotate(others=Count("pk", filter=~Q(verdict=VerdictKind.GOLD_WRONG))).filter(others=0)


def _judged(user: User, dataset: Dataset, example_ids: list[int]):
    """The ids, among these examples, that carry a standing verdict of the user's (a query)."""
    return (Verdict.objects.filter(dataset=dataset, user=user, retracted__isnull=True, example_id__in=example_ids)
            .values_list("example_id", flat=True).distinct())


def judged_by(user: User, dataset: Dataset, example_ids: list[int]) -> int:
    """How many of the examples carry a standing verdict of the user's."""
    return _judged(user, dataset, example_ids).count()


def judged_ids(user: User, dataset: Dataset, example_ids: list[int]) -> set[int]:
    """Which of the examples carry a standing verdict of the user's (the queue listing marks them)."""
    return set(_judged(user, dataset, example_ids))


def gold_wrong_count(dataset: Dataset) -> int:
    return gold_wrong(dataset).count()


def gold_corrections(dataset: Dataset) -> QuerySet[GoldCorrection]:
    """Every change made to the dataset's gold labels (adjudication or a spot-check), newest first."""
    return (GoldCorrection.objects.filter(dataset=dataset)
            .select_related("from_set", "to_set", "example", "user").order_by("-created", "-id"))


DASHBOARD_SETS = 6  # label sets compared by default: the newest version of each, the newest first


def _natural(name: str) -> list:
    """A name's sort key with its numbers as numbers: "run 8" before "run 10"."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def default_compared(sets: list[LabelSet]) -> list[LabelSet]:
    """What the agreement dashboard compares with gold when nothing is chosen: the newest version of each
    non-gold set, the DASHBOARD_SETS newest of those, in natural order of their names."""
    latest: dict[str, LabelSet] = {}
    for ls in sets:
        if ls.kind != LabelSetKind.GOLD and (ls.name not in latest or ls.version > latest[ls.name].version):
            latest[ls.name] = ls
    newest = sorted(latest.values(), key=lambda ls: (ls.created, ls.pk), reverse=True)[:DASHBOARD_SETS]
    return sorted(newest, key=lambda ls: (_natural(ls.name), ls.version))


def gold_versions(dataset: Dataset) -> QuerySet[LabelSet]:
    """Every gold version of the dataset (uploaded with the data, imported or adjudicated), newest first, with
    who made it and how many labels it holds."""
    return (LabelSet.objects.filter(dataset=dataset, kind=LabelSetKind.GOLD).select_related("created_by")
            .annotate(n_labels=Count("labels")).order_by("-created", "-id"))


def verdicts_of(dataset: Dataset) -> QuerySet[Verdict]:
    return Verdict.objects.filter(dataset=dataset).select_related("user", "example").order_by("created", "id")


# -- spot checks -------------------------------------------------------------------------------------------------

def spot_check_items_for(user: User, spot_check: SpotCheck) -> list[dict[str, Any]]:
    answers = dict(SpotCheckAnswer.objects.filter(item__spot_check=spot_check, user=user)
                   .values_list("item_id", "value"))
    return [{"item": item, "answer": answers.get(item.pk)}
            for item in SpotCheckItem.objects.filter(spot_check=spot_check).select_related("example")]


def spot_check_result(spot_check: SpotCheck) -> dict[str, Any]:
    """The gold error rate: the share of (item, reviewer) judgments that contradict gold, with a 95% Wilson
    interval; items where every reviewer contradicts gold are the candidates for correction."""
    gold = dict(Label.objects.filter(label_set=spot_check.gold).values_list("example_id", "value"))
    per_item: dict[int, list[bool]] = defaultdict(list)
    judged = SpotCheckAnswer.objects.filter(item__spot_check=spot_check).values_list("item__example_id", "value")
    for ex, value in judged:
        per_item[ex].append(value)
    judgments = [(ex, v) for ex, values in per_item.items() for v in values if ex in gold]
    wrong = sum(1 for ex, v in judgments if v != gold[ex])
    lo, hi = stats.wilson(wrong, len(judgments))
    candidates = [ex for ex, values in per_item.items() if ex in gold and all(v != gold[ex] for v in values)]
    return {
        "items": spot_check.items.count(),
        "judged_items": len(per_item),
        "judgments": len(judgments),
        "disagreements": wrong,
        "error_rate": wrong / len(judgments) if judgments else None,
        "ci_low": lo,
        "ci_high": hi,
        "candidates": candidates,
        "gold": gold,
    }


def spot_check_shown(spot_check: SpotCheck) -> SpotCheck:
    """The spot-check with what its page and the API show: `sample` (its examples' ids) and `result`."""
    spot_check.sample = list(spot_check.items.values_list("example_id", flat=True))
    spot_check.result = spot_check_result(spot_check)
    return spot_check


# -- the agreement report ---------------------------------------------------------------------------------------

def _category_field(dataset: Dataset) -> str | None:
    for name in ("category", "hh_type", "preference_type"):
        if name in dataset.field_names:
            return name
    return None


def agreement_report(dataset: Dataset, label_sets: list[LabelSet], gold: LabelSet | None) -> dict[str, Any]:
    """Accuracy against gold with Wilson intervals, confusion matrices, pairwise Cohen's kappa with intervals,
    McNemar's exact test of each model set against each human set, and the same accuracies per category
    (or per consistency-group size)."""
    values = {ls.pk: dict(Label.objects.filter(label_set=ls).values_list("example_id", "value"))
              for ls in [*label_sets, *([gold] if gold else [])]}
    scores = {ls.pk: dict(Label.objects.filter(label_set=ls, score__isnull=False).values_list("example_id", "score"))
              for ls in label_sets}
    examples = {pk: (fields, group) for pk, fields, group in
                Example.objects.filter(dataset=dataset).values_list("pk", "fields", "group")}
    group_size: dict[str, int] = defaultdict(int)
    for _, group in examples.values():
        group_size[group] += 1
    cat_field = _category_field(dataset)

    def stratum(ex: int) -> str:
        fields, group = examples[ex]
        if cat_field:
            return str(fields.get(cat_field))
        return f"group of {group_size[group]}"

    report: dict[str, Any] = {
        "dataset": dataset.pk,
        "gold": None if gold is None else {"id": gold.pk, "name": gold.name, "version": gold.version},
        "label_sets": [{"id": ls.pk, "name": ls.name, "version": ls.version, "kind": ls.kind} for ls in label_sets],
        "accuracy": [], "kappa": [], "mcnemar": [], "by_stratum": [],
        "stratified_by": cat_field or "group size",
    }
    if gold is not None:
        g = values[gold.pk]
        for ls in label_sets:
            shared = [ex for ex in values[ls.pk] if ex in g]
            pred, truth = [values[ls.pk][ex] for ex in shared], [g[ex] for ex in shared]
            score = [scores[ls.pk].get(ex) for ex in shared] if scores[ls.pk] else None
            row = {"label_set": ls.pk, **stats.accuracy(pred, truth, score), "confusion": stats.confusion(pred, truth)}
            report["accuracy"].append(row)
            strata: dict[str, list[int]] = defaultdict(list)
            for ex in shared:
                strata[stratum(ex)].append(ex)
            for name in sorted(strata):
                members = strata[name]
                report["by_stratum"].append({"label_set": ls.pk, "stratum": name, **stats.accuracy(
                    [values[ls.pk][ex] for ex in members], [g[ex] for ex in members])})
        models = [ls for ls in label_sets if ls.kind in (LabelSetKind.ICM, LabelSetKind.BASELINE)]
        humans = [ls for ls in label_sets if ls.kind == LabelSetKind.HUMAN]
        for m in models:
            for h in humans:
                shared = [ex for ex in values[m.pk] if ex in values[h.pk] and ex in g]
                report["mcnemar"].append({"first": m.pk, "second": h.pk, **stats.mcnemar_exact(
                    [values[m.pk][ex] == g[ex] for ex in shared], [values[h.pk][ex] == g[ex] for ex in shared])})
    everyone = [*label_sets, *([gold] if gold else [])]
    for i, a in enumerate(everyone):
        for b in everyone[i + 1:]:
            shared = [ex for ex in values[a.pk] if ex in values[b.pk]]
            report["kappa"].append({"first": a.pk, "second": b.pk, **stats.kappa(
                [values[a.pk][ex] for ex in shared], [values[b.pk][ex] for ex in shared])})
    return report


def annotation_set(user: User, dataset: Dataset) -> LabelSet | None:
    """The user's own blind label set for the dataset (None before their first label)."""
    return (LabelSet.objects.filter(dataset=dataset, annotator=user, source=LabelSetSource.ANNOTATION)
            .order_by("-version").first())


def next_to_label(user: User, dataset: Dataset, after: int | None = None) -> tuple[Example | None, int, int]:
    """The first example (by position) the user has not labeled blind yet, how many they have, of how many.
    `after`: the first such example past that position, wrapping round (an example skipped comes back last)."""
    own = annotation_set(user, dataset)
    examples = Example.objects.filter(dataset=dataset).order_by("position")
    todo = examples.exclude(labels__label_set=own) if own else examples
    current = todo.filter(position__gt=after).first() if after is not None else None
    return current or todo.first(), own.labels.count() if own else 0, examples.count()


def annotation_prompt(dataset: Dataset, example: Example, fields: dict[str, Any]) -> str | None:
    """What the model is asked about this example (the dataset's template filled in) for an annotator to
    answer; None where the template needs a field the annotator may not see."""
    task = get_task(dataset.task, template=dataset.template, consistency=dataset.consistency)
    try:
        return task.render(EngineExample(uid=0, id=example.external_id, fields=fields, group=example.group, key=None))
    except (KeyError, IndexError, ValueError):
        return None


def annotator_progress(dataset: Dataset, total: int) -> list[dict[str, Any]]:
    """Each annotator's blind label set: how many examples they labeled, of how many."""
    rows = (LabelSet.objects.filter(dataset=dataset, source=LabelSetSource.ANNOTATION)
            .select_related("annotator").annotate(n=Count("labels")).order_by("annotator__username"))
    return [{"label_set": ls, "annotator": ls.annotator, "labeled": ls.n, "total": total,
             "share": ls.n / total if total else None} for ls in rows]


def get_spot_check(user: User, pk: Any) -> SpotCheck:
    """A spot-check of a dataset where the user reads labels (else 404)."""
    from webapp.datasets.permissions import reads_labels
    from webapp.datasets.selectors import member_datasets

    try:
        check = SpotCheck.objects.select_related("dataset", "gold").get(pk=pk)
        dataset = member_datasets(user).get(pk=check.dataset_id)
    except (SpotCheck.DoesNotExist, Dataset.DoesNotExist, ValueError, TypeError):
        raise Http404("No such spot-check.") from None
    if not reads_labels(dataset.my_role):
        raise Http404("No such spot-check.")
    return check


def get_spot_check_item(check: SpotCheck, example_id: Any = None, *, item: Any = None) -> SpotCheckItem:
    """One item of the sample, by its example's id (the API) or its own (the page); else 404."""
    where = {"pk": item} if item is not None else {"example_id": example_id}
    try:
        return SpotCheckItem.objects.select_related("spot_check__dataset").get(spot_check=check, **where)
    except (SpotCheckItem.DoesNotExist, ValueError, TypeError):
        raise Http404("That example is not in this spot-check's sample.") from None


def spot_checks_of(dataset: Dataset) -> QuerySet[SpotCheck]:
    return SpotCheck.objects.filter(dataset=dataset).select_related("gold", "created_by")

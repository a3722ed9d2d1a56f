"""Writes for review: verdicts (never overwritten: a reviewer's new verdict on an item retracts their standing one,
and undo retracts), spot-checks, blind annotation, gold corrections."""

from __future__ import annotations

import random
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.http import Http404
from django.utils import timezone

from webapp.datasets import permissions
from webapp.datasets.models import Dataset, Example, Label, LabelSet, LabelSetKind, LabelSetSource
from webapp.datasets.selectors import next_version, role_of

from .models import GoldCorrection, SpotCheck, SpotCheckAnswer, SpotCheckItem, Verdict, VerdictKind
from .selectors import annotation_set, gold_wrong

MAX_NOTE = 4000


def _reviewer(user: AbstractBaseUser, dataset: Dataset, action: str) -> None:
    permissions.require(role_of(user, dataset), permissions.WRITE_LABELS, action)


def give_verdict(*, user: AbstractBaseUser, dataset: Dataset, example: Example, verdict: str, note: str = "",
                 context: dict[str, Any] | None = None) -> Verdict:
    """Record a reviewer's verdict on an item. It replaces their own standing verdict there (which stays in the
    history, retracted): one reviewer is one voice in the adjudication however often they answer. Another
    reviewer's verdicts on it are left as they are."""
    _reviewer(user, dataset, "Giving a verdict")
    if verdict not in VerdictKind.values:
        raise ValidationError({"verdict": f"verdict must be one of {', '.join(VerdictKind.values)}"})
    if example.dataset_id != dataset.pk:
        raise Http404("No such example in this dataset.")
    with transaction.atomic():
        standing = list(Verdict.objects.select_for_update().filter(dataset=dataset, example=example, user=user,
                                                                   retracted__isnull=True).values_list("pk", flat=True))
        new = Verdict.objects.create(dataset=dataset, example=example, user=user, verdict=verdict,
                                     note=(note or "")[:MAX_NOTE], context=context or {})
        Verdict.objects.filter(pk__in=standing).update(retracted=timezone.now(), superseded_by=new)
        return new


def undo_last_verdict(*, user: AbstractBaseUser, dataset: Dataset) -> Verdict | None:
    """Retract the user's own most recent verdict in this dataset (the row stays, marked retracted)."""
    _reviewer(user, dataset, "Undoing a verdict")
    with transaction.atomic():
        last = (Verdict.objects.select_for_update().filter(dataset=dataset, user=user, retracted__isnull=True)
                .order_by("-created", "-id").first())
        if last is not None:
            last.retracted = timezone.now()
            last.save(update_fields=["retracted"])
    return last


def create_spot_check(*, user: AbstractBaseUser, dataset: Dataset, gold: LabelSet, size: int,
                      seed: int = 0) -> SpotCheck:
    """Draw `size` examples at random, stratified by gold label (proportional allocation)."""
    _reviewer(user, dataset, "Starting a gold spot-check")
    if gold.dataset_id != dataset.pk or gold.kind != LabelSetKind.GOLD:
        raise ValidationError({"gold": "choose a gold label set of this dataset"})
    values = list(Label.objects.filter(label_set=gold).order_by("example__position").values_list("example_id",
                                                                                                  "value"))
    if not isinstance(size, int) or size < 1 or size > len(values):
        raise ValidationError({"size": f"size must be between 1 and {len(values)} (the gold labels)"})
    strata = {True: [ex for ex, v in values if v], False: [ex for ex, v in values if not v]}
    rng = random.Random(seed)
    n_true = round(size * len(strata[True]) / len(values))
    n_true = min(max(n_true, size - len(strata[False])), len(strata[True]))
    picked = rng.sample(strata[True], n_true) + rng.sample(strata[False], size - n_true)
    rng.shuffle(picked)
    with transaction.atomic():
        check = SpotCheck.objects.create(dataset=dataset, gold=gold, size=size, seed=seed, created_by=user)
        SpotCheckItem.objects.bulk_create(
            [SpotCheckItem(spot_check=check, example_id=ex, position=i) for i, ex in enumerate(picked)])
    return check


def answer_spot_check(*, user: AbstractBaseUser, item: SpotCheckItem, value: bool) -> SpotCheckAnswer:
    """A reviewer's blind label for a spot-check item (their own; changing it replaces only their answer)."""
    _reviewer(user, item.spot_check.dataset, "Answering a spot-check")
    answer, _ = SpotCheckAnswer.objects.update_or_create(item=item, user=user, defaults={"value": bool(value)})
    return answer


def correct_gold(*, user: AbstractBaseUser, dataset: Dataset, base: LabelSet,
                 corrections: dict[int, bool], reason: str = "") -> LabelSet:
    """Adjudicated corrections become a new version of the gold set; each change is recorded."""
    permissions.require(role_of(user, dataset), permissions.MANAGE, "Correcting gold")
    if base.dataset_id != dataset.pk or base.kind != LabelSetKind.GOLD:
        raise ValidationError({"gold": "corrections apply to a gold label set of this dataset"})
    if not corrections:
        raise ValidationError({"corrections": "nothing to correct"})
    known = set(Example.objects.filter(dataset=dataset, pk__in=list(corrections)).values_list("pk", flat=True))
    unknown = set(corrections) - known
    if unknown:
        raise ValidationError({"corrections": f"examples not in this dataset: {sorted(unknown)[:5]}"})
    with transaction.atomic():
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        old = dict(Label.objects.filter(label_set=base).values_list("example_id", "value"))
        version = next_version(dataset.pk, base.name)
        new = LabelSet.objects.create(
            dataset=dataset, kind=LabelSetKind.GOLD, name=base.name, version=version,
            source=LabelSetSource.ADJUDICATION, created_by=user,
            configuration={"corrected_from": base.pk, "from_version": base.version, "changes": len(corrections),
                           "reason": reason[:MAX_NOTE]},
        )
        merged = {**old, **corrections}
        Label.objects.bulk_create([Label(label_set=new, example_id=ex, value=v) for ex, v in merged.items()],
                                  batch_size=2000)
        GoldCorrection.objects.bulk_create([
            GoldCorrection(dataset=dataset, from_set=base, to_set=new, example_id=ex, old_value=old.get(ex),
                           new_value=v, reason=reason[:MAX_NOTE], user=user)
            for ex, v in corrections.items()
        ])
    return new


def gold_wrong_examples(dataset: Dataset) -> list[int]:
    """Examples whose standing (not retracted) verdicts say gold is wrong, and none says otherwise."""
    return sorted(row["example_id"] for row in gold_wrong(dataset))


def adjudicate_from_verdicts(*, user: AbstractBaseUser, dataset: Dataset, base: LabelSet) -> LabelSet:
    """A new gold version with every unanimously 'gold wrong' item flipped (binary labels)."""
    examples = gold_wrong_examples(dataset)
    old = dict(Label.objects.filter(label_set=base, example_id__in=examples).values_list("example_id", "value"))
    corrections = {ex: not old[ex] for ex in examples if ex in old}
    return correct_gold(user=user, dataset=dataset, base=base, corrections=corrections,
                        reason=f"reviewers' 'gold wrong' verdicts on {len(corrections)} items")


# -- blind annotation -------------------------------------------------------------------------------------------

def ensure_annotation_set(user: AbstractBaseUser, dataset: Dataset) -> LabelSet:
    """The user's own blind label set for the dataset, made on their first label."""
    found = annotation_set(user, dataset)
    if found is None:
        name = f"{user.get_username()} (blind)"
        version = next_version(dataset.pk, name)
        found = LabelSet.objects.create(dataset=dataset, kind=LabelSetKind.HUMAN, name=name, version=version,
                                        source=LabelSetSource.ANNOTATION, annotator=user, created_by=user,
                                        partial=True)
    return found


def annotate(*, user: AbstractBaseUser, dataset: Dataset, example: Example, value: bool) -> Label:
    """Add (or change) the annotator's own label for an example, in their own human label set."""
    permissions.require(role_of(user, dataset), permissions.ANNOTATE, "Labeling")
    if example.dataset_id != dataset.pk:
        raise Http404("No such example in this dataset.")
    with transaction.atomic():
        label_set = ensure_annotation_set(user, dataset)
        label, _ = Label.objects.update_or_create(label_set=label_set, example=example,
                                                  defaults={"value": bool(value)})
        total = Example.objects.filter(dataset=dataset).count()
        LabelSet.objects.filter(pk=label_set.pk).update(partial=label_set.labels.count() < total,
                                                        revision=F("revision") + 1)
    return label


def undo_annotation(*, user: AbstractBaseUser, dataset: Dataset) -> int | None:
    """Remove the annotator's most recent label; returns the example it was on."""
    label_set = annotation_set(user, dataset)
    if label_set is None:
        return None
    last = label_set.labels.order_by("-id").first()
    if last is None:
        return None
    example_id = last.example_id
    last.delete()
    LabelSet.objects.filter(pk=label_set.pk).update(partial=True, revision=F("revision") + 1)
    return example_id

"""Reads. Every selector that takes a user returns only what that user may see (else 404)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Count, F, IntegerField, Max, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404

from icm_engine.facade import gold_comparison

from . import permissions
from .models import Dataset, Example, Label, LabelSet, LabelSetKind, Membership, Role

User = AbstractBaseUser | AnonymousUser


def _count(model: type, **filters: Any) -> Subquery:
    qs = model.objects.filter(**filters).order_by().values(next(iter(filters))).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(qs, output_field=IntegerField()), Value(0))


def member_datasets(user: User) -> QuerySet[Dataset]:
    """The user's datasets, each with `my_role`."""
    if not user.is_authenticated:
        return Dataset.objects.none()
    # The role comes from the membership join the filter makes (one join, no per-row subquery): every page
    # and API call looks its dataset up through here.
    return (Dataset.objects.filter(memberships__user=user).select_related("owner")
            .annotate(my_role=F("memberships__role")))


def datasets_for_user(user: User) -> QuerySet[Dataset]:
    """The user's datasets with `my_role`, `example_count` and `label_set_count` (for listings)."""
    return member_datasets(user).annotate(example_count=_count(Example, dataset=OuterRef("pk")),
                                          label_set_count=_count(LabelSet, dataset=OuterRef("pk")))


def get_dataset(user: User, pk: Any, *, counts: bool = False) -> Dataset:
    """The dataset with `my_role` set (and the counts, when asked: they count every example, which every
    page and API call on a large dataset would otherwise pay), or 404 when it does not exist or the user
    is not a member."""
    try:
        return (datasets_for_user(user) if counts else member_datasets(user)).get(pk=pk)
    except (Dataset.DoesNotExist, ValueError, TypeError):
        raise Http404("No such dataset.") from None


def role_of(user: User, dataset: Dataset) -> str | None:
    cached = getattr(dataset, "my_role", None)
    if cached is not None:
        return cached
    if not user.is_authenticated:
        return None
    return Membership.objects.filter(dataset=dataset, user=user).values_list("role", flat=True).first()


def blind_dataset_ids(user: User) -> QuerySet:
    """Datasets where the user is an annotator, and so labels blind."""
    return Membership.objects.filter(user=user, role=Role.ANNOTATOR).values("dataset_id")


def label_sets_for_user(user: User) -> QuerySet[LabelSet]:
    """Label sets the user may read: all of their datasets' sets, except that an annotator sees only
    the sets they made themselves."""
    if not user.is_authenticated:
        return LabelSet.objects.none()
    return (
        LabelSet.objects.filter(dataset__memberships__user=user)
        .exclude(Q(dataset_id__in=blind_dataset_ids(user)) & ~Q(annotator=user))
        .select_related("dataset", "created_by", "annotator")
    )


def dataset_label_sets(user: User, dataset: Dataset) -> QuerySet[LabelSet]:
    """The label sets of `dataset` the user may read, the dataset as `get_dataset` returned it: the rule of
    `label_sets_for_user` (an annotator reads only their own sets) from the role already read, without
    its joins (the review pages read these on every request)."""
    role = role_of(user, dataset)
    if role is None:
        return LabelSet.objects.none()
    sets = dataset.label_sets.all()
    return sets.filter(annotator=user) if role == Role.ANNOTATOR else sets


def get_dataset_with_label_sets(user: User, pk: Any) -> tuple[Dataset, list[LabelSet]]:
    """`get_dataset` and `dataset_label_sets` (ordered by kind, name, version) in one query where the
    dataset has label sets: the review pages need both on every request. 404 as `get_dataset`."""
    if not user.is_authenticated:
        raise Http404("No such dataset.")
    try:
        sets = list(LabelSet.objects.filter(dataset_id=pk, dataset__memberships__user=user)
                    .select_related("dataset", "dataset__owner")
                    .annotate(my_role=F("dataset__memberships__role")).order_by("kind", "name", "version"))
    except (ValueError, TypeError):
        raise Http404("No such dataset.") from None
    if not sets:
        return get_dataset(user, pk), []
    dataset = sets[0].dataset
    dataset.my_role = sets[0].my_role
    for label_set in sets:
        label_set.dataset = dataset
    if dataset.my_role == Role.ANNOTATOR:  # the rule of `dataset_label_sets`
        sets = [ls for ls in sets if ls.annotator_id == user.pk]
    return dataset, sets


def get_label_set(user: User, pk: Any) -> LabelSet:
    try:
        return label_sets_for_user(user).get(pk=pk)
    except (LabelSet.DoesNotExist, ValueError, TypeError):
        raise Http404("No such label set.") from None


def label_sets_with_counts(dataset: Dataset, user: User | None = None) -> QuerySet[LabelSet]:
    """The dataset's label sets (those `user` may read, when given) with how many labels each holds and
    how many are True."""
    qs = LabelSet.objects.filter(dataset=dataset)
    if user is not None:
        qs = qs.filter(pk__in=label_sets_for_user(user).filter(dataset=dataset).values("pk"))
    return (
        qs
        .select_related("created_by", "annotator")
        .annotate(
            n_labels=Count("labels"),
            n_true=Count("labels", filter=Q(labels__value=True)),
            n_false=Count("labels", filter=Q(labels__value=False)),
        )
        .order_by("kind", "name", "version")
    )


def next_version(dataset_id: int, name: str) -> int:
    """The version a new label set named `name` gets in this dataset (1, or one past the highest)."""
    return (LabelSet.objects.filter(dataset_id=dataset_id, name=name).aggregate(v=Max("version"))["v"] or 0) + 1


def latest_gold(dataset: Dataset) -> LabelSet | None:
    return LabelSet.objects.filter(dataset=dataset, kind=LabelSetKind.GOLD).order_by("-created", "-id").first()


def agreement(a: LabelSet, b: LabelSet) -> dict[str, Any]:
    """How often two label sets agree on the examples both label, counted by the database."""
    other = Label.objects.filter(label_set=b, example=OuterRef("example")).values("value")[:1]
    stats = (
        Label.objects.filter(label_set=a)
        .annotate(other=Subquery(other))
        .filter(other__isnull=False)
        .aggregate(n=Count("pk"), agree=Count("pk", filter=Q(value=F("other"))))
    )
    n = stats["n"] or 0
    return {"n": n, "agree": stats["agree"] or 0, "rate": (stats["agree"] / n) if n else None}


def gold_comparisons(label_sets: list[LabelSet], gold: LabelSet | None) -> dict[int, dict[str, Any]]:
    """Each label set against `gold` on the examples both label (the engine's `gold_comparison`: n, accuracy
    with its interval, balance, majority-class rate, AUROC of the scores, warnings), by label set id; gold
    itself and every set when there is no gold are left out. Two queries, however many sets."""
    ids = [ls.pk for ls in label_sets if gold is not None and ls.pk != gold.pk]
    if not ids:
        return {}
    truth = dict(Label.objects.filter(label_set=gold).values_list("example_id", "value"))
    rows: dict[int, list[tuple[bool, bool, float | None]]] = {pk: [] for pk in ids}
    for set_id, example_id, value, score in (Label.objects.filter(label_set_id__in=ids)
                                             .values_list("label_set_id", "example_id", "value", "score")):
        if example_id in truth:
            rows[set_id].append((value, truth[example_id], score))
    out = {}
    for pk, paired in rows.items():
        scores = [s for _, _, s in paired]
        out[pk] = gold_comparison([v for v, _, _ in paired], [t for _, t, _ in paired],
                                  scores if any(s is not None for s in scores) else None)
    return out


def examples_of(dataset: Dataset, search: str = "", *, role: str | None = None) -> QuerySet[Example]:
    """The dataset's examples in file order; with `search`, those whose fields contain it (any case) or whose
    id is exactly it. Only the fields `role` is shown are searched: annotators never find an example by a
    field that carries its label."""
    qs = Example.objects.filter(dataset=dataset).order_by("position")
    search = search.strip()
    if search:
        found = Q(search_text__contains=search.lower()) | Q(external_id=search)
        if permissions.reads_labels(role):
            found |= Q(hidden_text__contains=search.lower())
        qs = qs.filter(found)
    return qs


def labels_of(label_set: LabelSet) -> QuerySet[Label]:
    return Label.objects.filter(label_set=label_set).select_related("example").order_by("example__position")


def members_of(dataset: Dataset) -> QuerySet[Membership]:
    return Membership.objects.filter(dataset=dataset).select_related("user").order_by("user__username")


def get_membership(dataset: Dataset, user_id: Any) -> Membership:
    try:
        return Membership.objects.select_related("dataset", "user").get(dataset=dataset, user_id=user_id)
    except (Membership.DoesNotExist, ValueError, TypeError):
        raise Http404("No such member.") from None


def examples_by_id(dataset: Dataset, ids: list[int]) -> dict[int, Example]:
    """The dataset's examples with these database ids, by id."""
    return Example.objects.filter(dataset=dataset).in_bulk(ids)


def get_example(dataset: Dataset, pk: Any) -> Example:
    try:
        return Example.objects.get(dataset=dataset, pk=pk)
    except (Example.DoesNotExist, ValueError, TypeError):
        raise Http404("No such example in this dataset.") from None

"""Writes. Each service validates everything first, then writes in one transaction: a rejected import
or a refused action leaves the database as it was."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.http import Http404
from django.utils import timezone

from icm_engine.facade import DataError, Problem, parse_label

from . import label_studio, permissions
from .models import (
    Dataset,
    Example,
    Label,
    LabelSet,
    LabelSetKind,
    LabelSetSource,
    Membership,
    Role,
    StagedUpload,
)
from .parsing import ParsedDataset, parse_dataset_file, parse_label_file, safe_filename
from .selectors import next_version, role_of

BULK = 2000


def search_text(fields: dict[str, Any], *, hidden: bool = False) -> str:
    """What a text search looks in: the example's fields, lowercased, without its id (an id is matched
    exactly, never as a substring: "42" must not find e142). `hidden`: the fields annotators are not shown
    (permissions.LABEL_LIKE_FIELDS) instead of the others."""
    return "\n".join(str(v) for k, v in fields.items()
                     if k != "id" and v is not None and (k in permissions.LABEL_LIKE_FIELDS) == hidden).lower()


def _default_name(filename: str) -> str:
    return (PurePath(filename).stem or "dataset")[:200]


def create_dataset(
    *,
    owner: AbstractBaseUser,
    filename: str,
    data: bytes,
    task: str,
    name: str = "",
    template: str | None = None,
    consistency: str | None = None,
    description: str = "",
) -> Dataset:
    """Import a dataset file: its examples, and its gold labels (if any) as a gold label set."""
    parsed = parse_dataset_file(filename, data, task, template, consistency)
    return create_dataset_from_parsed(owner=owner, parsed=parsed, name=name, description=description)


def create_dataset_from_parsed(
    *, owner: AbstractBaseUser, parsed: ParsedDataset, name: str = "", description: str = ""
) -> Dataset:
    name = (name or "").strip()[:200] or _default_name(parsed.filename)
    with transaction.atomic():
        dataset = Dataset.objects.create(
            name=name,
            description=description,
            task=parsed.task.name,
            template=parsed.task.template,
            consistency=parsed.consistency,
            task_config=parsed.task.describe(),
            source_name=parsed.filename,
            field_names=parsed.field_names,
            owner=owner,
        )
        Membership.objects.create(dataset=dataset, user=owner, role=Role.OWNER)
        Example.objects.bulk_create(
            (
                Example(
                    dataset=dataset,
                    external_id=str(ex.id),
                    position=pos,
                    fields=jsonb_faithful(ex.fields),
                    group=ex.group,
                    consistency_key=ex.key,
                    search_text=search_text(ex.fields),
                    hidden_text=search_text(ex.fields, hidden=True),
                )
                for pos, ex in enumerate(parsed.loaded.examples)
            ),
            batch_size=BULK,
        )
        if parsed.loaded.gold:
            gold = LabelSet.objects.create(
                dataset=dataset,
                kind=LabelSetKind.GOLD,
                name="gold",
                version=1,
                source=LabelSetSource.FILE,
                source_name=parsed.filename,
                created_by=owner,
            )
            ids = dict(Example.objects.filter(dataset=dataset).values_list("external_id", "pk"))
            Label.objects.bulk_create(
                (Label(label_set=gold, example_id=ids[str(ex_id)], value=value)
                 for ex_id, value in parsed.loaded.gold.items()),
                batch_size=BULK,
            )
        _import_votes(dataset, parsed, owner)
    return dataset


def _votes(parsed: ParsedDataset) -> list[dict[str, bool]]:
    """The individual human votes of the paper's Alpaca files: `candidate_label` on the first row of each
    comparison holds every annotator's vote; the swapped row of the same comparison gets the opposite."""
    examples = parsed.loaded.examples
    if parsed.task.consistency != "asymmetric" or not any("candidate_label" in ex.fields for ex in examples):
        return []
    by_group: dict[str, list] = {}
    for ex in examples:
        by_group.setdefault(ex.group, []).append(ex)
    voters: list[dict[str, bool]] = []
    for members in by_group.values():
        first = next((ex for ex in members if isinstance(ex.fields.get("candidate_label"), list)), None)
        if first is None:
            continue
        for k, vote in enumerate(first.fields["candidate_label"]):
            try:
                value = parse_label(vote)
            except ValueError:
                continue
            while len(voters) <= k:
                voters.append({})
            voters[k][str(first.id)] = value
            for other in members:
                if other is not first and len(members) == 2:
                    voters[k][str(other.id)] = not value
    return voters


def _import_votes(dataset: Dataset, parsed: ParsedDataset, owner: AbstractBaseUser) -> None:
    voters = _votes(parsed)
    if not voters:
        return
    ids = dict(Example.objects.filter(dataset=dataset).values_list("external_id", "pk"))
    for k, votes in enumerate(voters, start=1):
        label_set = LabelSet.objects.create(
            dataset=dataset, kind=LabelSetKind.HUMAN, name=f"human vote {k}", version=1,
            source=LabelSetSource.FILE, source_name=parsed.filename, created_by=owner,
            configuration={"from": "candidate_label", "vote": k}, partial=len(votes) < len(ids),
        )
        Label.objects.bulk_create((Label(label_set=label_set, example_id=ids[ex], value=v) for ex, v in votes.items()),
                                  batch_size=BULK)


def stage_upload(
    *, owner: AbstractBaseUser, filename: str, data: bytes, options: dict[str, Any]
) -> tuple[StagedUpload, ParsedDataset]:
    """Validate a dataset file and keep it until its owner confirms the preview (browser flow). A Label
    Studio export (options' `format`) is checked with its label sets too; the preview lists them."""
    if options.get("format") == "label-studio":
        parsed: ParsedDataset = label_studio.parse_dataset_export(
            filename, data, task=options.get("task", ""), template=options.get("template"),
            consistency=options.get("consistency"), true_choice=options.get("true_choice", ""),
            from_name=options.get("from_name", ""))
    else:
        parsed = parse_dataset_file(filename, data, options.get("task", ""), options.get("template"),
                                    options.get("consistency"))
    forget_staged_uploads(owner=owner, keep=settings.ICM_MAX_STAGED_UPLOADS - 1)
    staged = StagedUpload.objects.create(
        owner=owner, token=secrets.token_urlsafe(32), filename=parsed.filename, data=data, options=options
    )
    return staged, parsed


def forget_staged_uploads(*, owner: AbstractBaseUser, keep: int) -> None:
    """Delete every expired preview (anyone's), and all but `owner`'s newest `keep`: a preview holds its whole
    file, so unconfirmed ones are bounded per user (ICM_MAX_STAGED_UPLOADS) and in time
    (ICM_STAGED_UPLOAD_HOURS)."""
    StagedUpload.objects.filter(created__lt=timezone.now() - timedelta(hours=settings.ICM_STAGED_UPLOAD_HOURS)).delete()
    newest = StagedUpload.objects.filter(owner=owner).order_by("-created", "-id").values_list("pk", flat=True)[:keep]
    StagedUpload.objects.filter(owner=owner).exclude(pk__in=list(newest)).delete()


def confirm_upload(*, owner: AbstractBaseUser, token: str) -> Dataset:
    try:
        staged = StagedUpload.objects.get(
            token=token, owner=owner,
            created__gte=timezone.now() - timedelta(hours=settings.ICM_STAGED_UPLOAD_HOURS))
    except StagedUpload.DoesNotExist:
        raise Http404("This upload has expired or was already imported; upload the file again.") from None
    opts = staged.options
    create = create_dataset_from_label_studio if opts.get("format") == "label-studio" else create_dataset
    extra = {k: opts.get(k, "") for k in ("true_choice", "from_name")} if create is not create_dataset else {}
    with transaction.atomic():
        dataset = create(
            owner=owner, filename=staged.filename, data=bytes(staged.data), task=opts.get("task", ""),
            name=opts.get("name", ""), template=opts.get("template"), consistency=opts.get("consistency"),
            description=opts.get("description", ""), **extra,
        )
        staged.delete()
    return dataset


def import_label_set(
    *,
    user: AbstractBaseUser,
    dataset: Dataset,
    filename: str,
    data: bytes,
    kind: str,
    name: str = "",
    model: str = "",
    configuration: dict[str, Any] | None = None,
) -> LabelSet:
    """Import rows of `id` and `label` as a new label set (a new version when the name exists). Gold is the
    reference of every metric: only owners create a gold version."""
    permissions.require(role_of(user, dataset), permissions.MANAGE if kind == LabelSetKind.GOLD
                        else permissions.WRITE_LABELS, "Importing gold" if kind == LabelSetKind.GOLD
                        else "Importing a label set")
    filename = safe_filename(filename)
    if kind not in LabelSetKind.values:
        raise DataError([Problem(filename, None, "kind", f"kind must be one of {', '.join(LabelSetKind.values)}")])
    name = (name or "").strip()[:200] or _default_name(filename)
    ids = dict(Example.objects.filter(dataset=dataset).values_list("external_id", "pk"))
    parsed = parse_label_file(filename, data, set(ids))
    with transaction.atomic():
        # Lock the dataset row so two imports under one name get consecutive versions, not a clash.
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        version = next_version(dataset.pk, name)
        label_set = LabelSet.objects.create(
            dataset=dataset,
            kind=kind,
            name=name,
            version=version,
            source=LabelSetSource.IMPORT,
            source_name=filename,
            created_by=user,
            model=model[:255],
            configuration=configuration or {},
            partial=len(parsed.labels) < len(ids),
        )
        Label.objects.bulk_create(
            (Label(label_set=label_set, example_id=ids[ex_id], value=value, score=score)
             for ex_id, value, score in parsed.labels),
            batch_size=BULK,
        )
    return label_set


def create_dataset_from_label_studio(
    *, owner: AbstractBaseUser, filename: str, data: bytes, task: str, name: str = "", template: str | None = None,
    consistency: str | None = None, description: str = "", true_choice: str = "", from_name: str = "",
) -> Dataset:
    """A new dataset from a Label Studio export: each task's data an example, and its label sets."""
    parsed = label_studio.parse_dataset_export(filename, data, task=task, template=template, consistency=consistency,
                                               true_choice=true_choice, from_name=from_name)
    assert parsed.found is not None
    with transaction.atomic():
        dataset = create_dataset_from_parsed(owner=owner, parsed=parsed, name=name, description=description)
        _write_label_studio_sets(dataset=dataset, found=parsed.found, user=owner)
    return dataset


def import_label_studio(
    *, user: AbstractBaseUser, dataset: Dataset, filename: str, data: bytes, true_choice: str = "",
    from_name: str = "",
) -> list[LabelSet]:
    """Import a Label Studio export into a dataset: a human set per annotator, a set per prediction model
    version (with its scores), a gold set from ground-truth annotations. Gold needs the owner, as any gold."""
    role = role_of(user, dataset)
    permissions.require(role, permissions.WRITE_LABELS, "Importing label sets")
    ids = set(Example.objects.filter(dataset=dataset).values_list("external_id", flat=True))
    found = label_studio.parse_export(filename, data, true_choice=true_choice, from_name=from_name, known_ids=ids)
    if not found.label_sets:
        raise DataError([Problem(found.filename, None, "result", "no task holds a label (a choice of an annotation "
                                                                 "that was not cancelled, or of a prediction)")])
    if any(s.kind == LabelSetKind.GOLD for s in found.label_sets):
        permissions.require(role, permissions.MANAGE, "Importing gold")
    with transaction.atomic():
        # Lock the dataset row so two imports under one name get consecutive versions, not a clash.
        Dataset.objects.select_for_update().filter(pk=dataset.pk).first()
        return _write_label_studio_sets(dataset=dataset, found=found, user=user)


def _write_label_studio_sets(*, dataset: Dataset, found: label_studio.ParsedExport,
                             user: AbstractBaseUser) -> list[LabelSet]:
    ids = dict(Example.objects.filter(dataset=dataset).values_list("external_id", "pk"))
    # An annotator is the member whose email (or username) is the one Label Studio gives: a name in a file
    # never attributes labels to someone outside the dataset.
    members = {}
    for m in Membership.objects.filter(dataset=dataset).select_related("user"):
        members.update({k.lower(): m.user for k in (m.user.email, m.user.get_username()) if k})
    created = []
    for s in found.label_sets:
        label_set = LabelSet.objects.create(
            dataset=dataset, kind=s.kind, name=s.name, version=next_version(dataset.pk, s.name),
            source=LabelSetSource.IMPORT, source_name=found.filename, created_by=user,
            annotator=members.get(s.annotator.lower()) if s.kind == LabelSetKind.HUMAN and s.annotator else None,
            model=s.model_version[:255], configuration=s.configuration, partial=len(s.labels) < len(ids))
        Label.objects.bulk_create((Label(label_set=label_set, example_id=ids[ex], value=v, score=score)
                                   for ex, (v, score, _) in s.labels.items()), batch_size=BULK)
        created.append(label_set)
    return created


def labels_changed(*label_set_ids: int) -> None:
    """Record that these sets' labels were written after their creation (cached comparisons go stale)."""
    LabelSet.objects.filter(pk__in=label_set_ids).update(revision=F("revision") + 1)


MAX_GUIDELINES = 20000


def update_dataset(*, user: AbstractBaseUser, dataset: Dataset, name: str | None = None,
                   description: str | None = None, guidelines: str | None = None) -> Dataset:
    permissions.require(role_of(user, dataset), permissions.MANAGE, "Editing a dataset")
    if name is not None:
        name = name.strip()
        if not name:
            raise ValidationError({"name": "A dataset needs a name."})
        dataset.name = name[:200]
    if description is not None:
        dataset.description = description
    if guidelines is not None:
        if len(guidelines) > MAX_GUIDELINES:
            raise ValidationError({"guidelines": f"guidelines are at most {MAX_GUIDELINES} characters"})
        dataset.guidelines = guidelines.strip()
    dataset.save(update_fields=["name", "description", "guidelines"])
    return dataset


def delete_dataset(*, user: AbstractBaseUser, dataset: Dataset) -> None:
    permissions.require(role_of(user, dataset), permissions.MANAGE, "Deleting a dataset")
    with transaction.atomic():
        dataset.delete()


def delete_label_set(*, user: AbstractBaseUser, label_set: LabelSet) -> None:
    role = role_of(user, label_set.dataset)
    # Gold is the reference every metric is measured against: only owners remove a version of it.
    needed = permissions.MANAGE if label_set.kind == LabelSetKind.GOLD else permissions.WRITE_LABELS
    permissions.require(role, needed, "Deleting this label set")
    label_set.delete()


def jsonb_faithful(value: Any) -> Any:
    """PostgreSQL's jsonb rewrites a number such as 4.2e+16 as 42000000000000000, so a prompt would read
    differently from the file. Such floats (those Python writes with an exponent) are kept as their text,
    which is what the engine renders for them anyway; every other value is stored as it is."""
    if isinstance(value, float) and "e" in repr(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: jsonb_faithful(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonb_faithful(v) for v in value]
    return value

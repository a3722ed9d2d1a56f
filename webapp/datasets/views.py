"""Pages. Every view scopes its lookups to the signed-in user's datasets (others get 404) and leaves
writes to services; htmx requests get the partial they swap in."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from icm_engine.facade import DataError

from . import memberships, permissions, selectors, services
from .data_view import data_view
from .downloads import FORMATS, dataset_export, label_set_export
from .forms import DatasetUploadForm, LabelSetImportForm, LabelStudioImportForm, MemberAddForm, MemberRoleForm
from .label_studio import looks_like_export
from .parsing import fitting_tasks, read_upload

LABELS_PER_PAGE = 50
LABEL_CHOICES = [("true", "says T"), ("false", "says F"), ("none", "has no label")]


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _validation_text(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    return " ".join(exc.messages)


@require_GET
def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = selectors.datasets_for_user(request.user)
    return render(request, "datasets/list.html", {"datasets": datasets})


@require_http_methods(["GET", "POST"])
def dataset_new(request: HttpRequest) -> HttpResponse:
    """Upload, then preview (nothing written yet), then confirm."""
    form = DatasetUploadForm(request.POST or None, request.FILES or None)
    context: dict = {"form": form}
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        options = {k: d[k] for k in ("name", "task", "template", "consistency", "description", "true_choice",
                                     "from_name")}
        data = b""
        try:
            data = read_upload(d["file"])
            fmt = d["format"] or "auto"
            options["format"] = "label-studio" if fmt == "label-studio" or (
                fmt == "auto" and looks_like_export(data)) else "rows"
            staged, parsed = services.stage_upload(owner=request.user, filename=d["file"].name, data=data,
                                                   options=options)
            context.update(preview=parsed.preview(), token=staged.token)
        except DataError as exc:
            context["problems"] = exc.problems
            context["fitting_tasks"] = fitting_tasks(d["file"].name, data, options.get("task", "")) if data else []
    template = "datasets/_preview.html" if _is_htmx(request) else "datasets/new.html"
    return render(request, template, context, status=400 if context.get("problems") else 200)


@require_POST
def dataset_confirm(request: HttpRequest) -> HttpResponse:
    token = request.POST.get("token", "")
    try:
        dataset = services.confirm_upload(owner=request.user, token=token)
    except DataError as exc:
        return render(request, "datasets/new.html", {"form": DatasetUploadForm(), "problems": exc.problems},
                      status=400)
    messages.success(request, f"Imported {dataset.name}.")
    return redirect("datasets:detail", pk=dataset.pk)


def _settings_context(request: HttpRequest, dataset) -> dict:
    role = selectors.role_of(request.user, dataset)
    return {
        "dataset": dataset,
        "role": role,
        "can_manage": permissions.allows(role, permissions.MANAGE),
        "reads_labels": permissions.reads_labels(role),
        "members": selectors.members_of(dataset),
        "member_form": MemberAddForm(),
        "role_form": MemberRoleForm(),
        "formats": FORMATS,
    }


def _labelsets_context(request: HttpRequest, dataset, import_form=None, problems=None,
                       label_studio_form=None, label_studio_problems=None) -> dict:
    role = selectors.role_of(request.user, dataset)
    label_sets = list(selectors.label_sets_with_counts(dataset, request.user))
    gold = selectors.latest_gold(dataset) if permissions.reads_labels(role) else None
    compared = selectors.gold_comparisons(label_sets, gold)
    for ls in label_sets:
        ls.gold_comparison = compared.get(ls.pk)
    return {
        "dataset": dataset,
        "role": role,
        "can_write": permissions.allows(role, permissions.WRITE_LABELS),
        "reads_labels": permissions.reads_labels(role),
        "label_sets": label_sets,
        "gold": gold,
        "import_form": import_form or LabelSetImportForm(),
        "label_studio_form": label_studio_form or LabelStudioImportForm(),
        "label_studio_problems": label_studio_problems,
        "problems": problems,
    }


@require_GET
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The dataset's first tab, Data: the data view. Its htmx requests get the table alone, with the address
    the browser should show, so a reload keeps the search, the filters and the page. (`examples/`, its
    earlier address, shows the same.)"""
    dataset = selectors.get_dataset(request.user, pk)
    view = data_view(request.user, dataset, request.GET)
    context = {"dataset": dataset, "view": view, "query": view.query, "label_choices": LABEL_CHOICES}
    if _is_htmx(request):
        response = render(request, "datasets/_examples.html", context)
        response["HX-Push-Url"] = f"{request.path}?{view.query.querystring()}"
    else:
        if not view.reads_labels:  # an annotator's own label set: on their Data tab, as they have no Runs tab
            context.update(_labelsets_context(request, dataset))
        response = render(request, "datasets/examples.html", context)
    response["Vary"] = "HX-Request"
    return response


dataset_examples = dataset_detail


@require_GET
def dataset_settings(request: HttpRequest, pk: int) -> HttpResponse:
    """Members and settings: what the dataset is, its guidelines, its members and invitations."""
    dataset = selectors.get_dataset(request.user, pk)
    return render(request, "datasets/settings.html", _settings_context(request, dataset))


@require_GET
def dataset_labelsets(request: HttpRequest, pk: int) -> HttpResponse:
    """The label sets of the Runs tab (htmx loads them there), or a page of their own."""
    dataset = selectors.get_dataset(request.user, pk)
    template = "datasets/_labelsets.html" if _is_htmx(request) else "datasets/labelsets.html"
    return render(request, template, _labelsets_context(request, dataset))


def _import_into(request: HttpRequest, pk: int, form, write, form_key: str, problems_key: str) -> HttpResponse:
    """An import form's answer on the Runs tab: `write(cleaned_data)` stores and returns the message; a
    rejected file shows its problems beside the form (400), and nothing is stored."""
    dataset = selectors.get_dataset(request.user, pk)
    problems = None
    if form.is_valid():
        try:
            messages.success(request, write(dataset, form.cleaned_data))
            form = None
        except DataError as exc:
            problems = exc.problems
    context = _labelsets_context(request, dataset, **{form_key: form, problems_key: problems})
    status = 400 if problems or (form is not None and form.errors) else 200
    if status == 200 and not _is_htmx(request):
        return redirect("runs:list", pk=pk)
    template = "datasets/_labelsets.html" if _is_htmx(request) else "datasets/labelsets.html"
    return render(request, template, context, status=status)


@require_POST
def labelset_import(request: HttpRequest, pk: int) -> HttpResponse:
    def write(dataset, d) -> str:
        label_set = services.import_label_set(
            user=request.user, dataset=dataset, filename=d["file"].name, data=read_upload(d["file"]),
            kind=d["kind"], name=d["name"], model=d["model"])
        return f"Imported label set {label_set.display_name}."

    return _import_into(request, pk, LabelSetImportForm(request.POST, request.FILES), write, "import_form",
                        "problems")


@require_POST
def labelset_import_label_studio(request: HttpRequest, pk: int) -> HttpResponse:
    """A Label Studio export's label sets, into this dataset (the API's POST datasets/{id}/label-studio/)."""
    def write(dataset, d) -> str:
        created = services.import_label_studio(
            user=request.user, dataset=dataset, filename=d["file"].name, data=read_upload(d["file"]),
            true_choice=d["true_choice"], from_name=d["from_name"])
        return "Imported " + ", ".join(ls.display_name for ls in created) + "."

    return _import_into(request, pk, LabelStudioImportForm(request.POST, request.FILES), write,
                        "label_studio_form", "label_studio_problems")


@require_GET
def dataset_download(request: HttpRequest, pk: int) -> HttpResponse:
    fmt = _download_format(request)
    if fmt is None:
        return HttpResponseBadRequest(f"format must be one of {', '.join(FORMATS)}")
    dataset = selectors.get_dataset(request.user, pk)
    permissions.require_label_reader(selectors.role_of(request.user, dataset))
    try:
        return dataset_export(dataset, fmt, query=request.GET)
    except ValidationError as exc:  # a Label Studio export's options
        return HttpResponseBadRequest(_validation_text(exc))


def _download_format(request: HttpRequest) -> str | None:
    fmt = request.GET.get("format", "jsonl")
    return fmt if fmt in FORMATS else None


@require_POST
def dataset_delete(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = selectors.get_dataset(request.user, pk)
    services.delete_dataset(user=request.user, dataset=dataset)
    messages.success(request, f"Deleted {dataset.name}.")
    return redirect("datasets:list")


def _member_form(request: HttpRequest, pk: int, act) -> HttpResponse:
    """Adding or inviting a member: the form's username and role to `act(dataset, username, role)`, which
    returns what to tell the owner; a refusal says why. Back to the dataset page either way."""
    dataset = selectors.get_dataset(request.user, pk)
    form = MemberAddForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a username and a role.")
    else:
        try:
            messages.success(request, act(dataset, **form.cleaned_data))
        except ValidationError as exc:
            messages.error(request, _validation_text(exc))
    return redirect("datasets:settings", pk=pk)


@require_POST
def member_add(request: HttpRequest, pk: int) -> HttpResponse:
    def add(dataset, username: str, role: str) -> str:
        memberships.add_member(actor=request.user, dataset=dataset, username=username, role=role)
        return f"Added {username}."

    return _member_form(request, pk, add)


@require_POST
def member_invite(request: HttpRequest, pk: int) -> HttpResponse:
    def invite(dataset, username: str, role: str) -> str:
        membership, link = memberships.invite_member(actor=request.user, dataset=dataset, username=username, role=role)
        days = round(settings.PASSWORD_RESET_TIMEOUT / 86400)
        return (f"Invited {membership.user.username} as {membership.get_role_display().lower()}. Send them this "
                f"link to choose their password (it works once, for {days} days): {request.build_absolute_uri(link)}")

    return _member_form(request, pk, invite)


@require_POST
def guidelines_update(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = selectors.get_dataset(request.user, pk)
    try:
        services.update_dataset(user=request.user, dataset=dataset, guidelines=request.POST.get("guidelines", ""))
        messages.success(request, "Guidelines saved." if dataset.guidelines else "Guidelines removed.")
    except ValidationError as exc:
        messages.error(request, _validation_text(exc))
    return redirect("datasets:settings", pk=pk)


@require_POST
def member_update(request: HttpRequest, pk: int, user_id: int) -> HttpResponse:
    dataset = selectors.get_dataset(request.user, pk)
    membership = selectors.get_membership(dataset, user_id)
    try:
        if request.POST.get("action") == "remove":
            memberships.remove_member(actor=request.user, membership=membership)
            messages.success(request, f"Removed {membership.user.username}.")
        else:
            form = MemberRoleForm(request.POST)
            if not form.is_valid():
                raise ValidationError({"role": "choose a role"})
            memberships.set_member_role(actor=request.user, membership=membership, role=form.cleaned_data["role"])
            messages.success(request, f"{membership.user.username} is now {membership.role}.")
    except ValidationError as exc:
        messages.error(request, _validation_text(exc))
    return redirect("datasets:settings", pk=pk)


@require_GET
def labelset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    label_set = selectors.get_label_set(request.user, pk)
    dataset = label_set.dataset
    summary = selectors.label_sets_with_counts(dataset).get(pk=pk)
    gold = selectors.latest_gold(dataset)
    role = selectors.role_of(request.user, dataset)
    page = Paginator(selectors.labels_of(label_set), LABELS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "datasets/labelset_detail.html", {
        "label_set": summary,
        "dataset": dataset,
        "page": page,
        "gold": gold,
        "gold_comparison": selectors.gold_comparisons([label_set], gold).get(label_set.pk),
        "can_delete": permissions.allows(role, permissions.MANAGE if label_set.kind == "gold"
                                         else permissions.WRITE_LABELS),
        "formats": FORMATS,
    })


@require_GET
def labelset_download(request: HttpRequest, pk: int) -> HttpResponse:
    fmt = _download_format(request)
    if fmt is None:
        return HttpResponseBadRequest(f"format must be one of {', '.join(FORMATS)}")
    label_set = selectors.get_label_set(request.user, pk)
    try:
        return label_set_export(label_set, fmt, query=request.GET, reads_labels=permissions.reads_labels(
            selectors.role_of(request.user, label_set.dataset)))
    except ValidationError as exc:  # a Label Studio export's options
        return HttpResponseBadRequest(_validation_text(exc))


@require_POST
def labelset_delete(request: HttpRequest, pk: int) -> HttpResponse:
    label_set = selectors.get_label_set(request.user, pk)
    dataset_pk = label_set.dataset_id
    services.delete_label_set(user=request.user, label_set=label_set)
    messages.success(request, f"Deleted label set {label_set.display_name}.")
    return redirect("runs:list", pk=dataset_pk)


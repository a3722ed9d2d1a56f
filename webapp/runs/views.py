"""Run pages: start a run from a dataset, a dataset's runs, the live run page, cancel and resume."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.datasets import permissions
from webapp.datasets.selectors import get_dataset, role_of

from . import selectors, services
from .forms import RunForm
from .models import RunMethod
from .selectors import plot_points, snapshot


def _dataset_for_runs(request: HttpRequest, pk: int):
    """The dataset, for users who may see its runs (annotators label blind and see none)."""
    dataset = get_dataset(request.user, pk)
    permissions.require_label_reader(role_of(request.user, dataset))
    return dataset


@require_GET
def run_list(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _dataset_for_runs(request, pk)
    return render(request, "runs/list.html", {
        "dataset": dataset, "runs": selectors.with_gold(dataset, list(selectors.runs_of(dataset))),
        "can_run": permissions.allows(role_of(request.user, dataset), permissions.WRITE_LABELS),
    })


@require_GET
def run_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The dataset page's runs section (loaded by htmx): ICM beside the baselines, and the latest runs."""
    dataset = _dataset_for_runs(request, pk)
    return render(request, "runs/_panel.html", {
        "dataset": dataset, "runs": selectors.with_gold(dataset, list(selectors.runs_of(dataset)[:10])),
        "methods": selectors.method_table(dataset),
        "can_run": permissions.allows(role_of(request.user, dataset), permissions.WRITE_LABELS),
    })


@require_http_methods(["GET", "POST"])
def run_new(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_dataset(request.user, pk)
    permissions.require(role_of(request.user, dataset), permissions.WRITE_LABELS, "Starting a run")
    form = RunForm(request.POST or None)
    errors = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            runs = services.start_runs(
                user=request.user, dataset=dataset, method=d["method"], seeds=d["seeds"],
                baselines=d["with_baselines"], hyperparameters=form.hyperparameters(d["method"]),
                baseline_hyperparameters=form.hyperparameters(RunMethod.ZERO_SHOT), shards=d["shards"],
                backend=d["backend"], model=d["model"], limit=d["limit"],
                backend_options={"base_url": d["base_url"]} if d["base_url"] else {})
            run = runs[0]
            messages.success(request, f"Run {run.pk} is queued." if len(runs) == 1 else
                             f"Runs {', '.join(str(r.pk) for r in runs)} are queued, one per seed.")
            return redirect("runs:detail", pk=run.pk)
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"run": exc.messages}
    elif request.method == "POST":
        errors = form.errors
    return render(request, "runs/new.html", {"dataset": dataset, "form": form, "errors": errors},
                  status=400 if errors else 200)


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = selectors.get_run(request.user, pk)
    snap = snapshot(run)
    return render(request, "runs/detail.html", {"run": run, "snap": snap, "plot": plot_points(snap["history"])})


def _run_action(request: HttpRequest, pk: int, action) -> HttpResponse:
    """Cancel or resume: the service decides; htmx gets the live fragment back, a form post the page."""
    run = selectors.get_run(request.user, pk)
    try:
        run = action(user=request.user, run=run)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    if request.headers.get("HX-Request") == "true":
        snap = snapshot(run)
        return render(request, "runs/_live.html", {"snap": snap, "plot": plot_points(snap["history"])})
    return redirect("runs:detail", pk=pk)


@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _run_action(request, pk, services.cancel_run)


@require_POST
def run_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _run_action(request, pk, services.resume_run)

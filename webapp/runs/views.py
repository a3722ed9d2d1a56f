"""Run pages: start a run from a dataset, a dataset's runs, the live run page, cancel and resume."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from icm_engine.facade import choice_for
from webapp.datasets import permissions
from webapp.datasets.selectors import get_dataset, latest_gold, role_of

from . import selectors, services
from .estimates import dataset_size, start_estimate
from .forms import RunForm
from .models import RunMethod
from .selectors import snapshot

# The runs the Runs tab lists (the newest); its experiments' tables count every finished run.
PANEL_RUNS = 50


def _dataset_for_runs(request: HttpRequest, pk: int):
    """The dataset, for users who may see its runs (annotators label blind and see none)."""
    dataset = get_dataset(request.user, pk)
    permissions.require_label_reader(role_of(request.user, dataset))
    return dataset


@require_GET
def run_list(request: HttpRequest, pk: int) -> HttpResponse:
    """The dataset's Runs tab: its experiments' method tables, its runs and its label sets."""
    dataset = _dataset_for_runs(request, pk)
    return render(request, "runs/list.html", _panel_context(request, dataset))


@require_GET
def run_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The Runs tab's live part (htmx polls it): each experiment's methods side by side, and the latest runs."""
    dataset = _dataset_for_runs(request, pk)
    return render(request, "runs/_panel.html", _panel_context(request, dataset))


def _panel_context(request: HttpRequest, dataset) -> dict:
    runs = list(selectors.runs_of(dataset)[:PANEL_RUNS + 1])
    return {
        "dataset": dataset, "runs": selectors.with_gold(dataset, runs[:PANEL_RUNS]),
        "more_runs": len(runs) > PANEL_RUNS,
        "experiments": selectors.experiments(dataset), "gold": latest_gold(dataset),
        "can_run": permissions.allows(role_of(request.user, dataset), permissions.WRITE_LABELS),
    }


@require_http_methods(["GET", "POST"])
def run_new(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_dataset(request.user, pk)
    permissions.require(role_of(request.user, dataset), permissions.WRITE_LABELS, "Starting a run")
    defaults = choice_for(dataset.task_config)
    form = RunForm(request.POST or None, initial=defaults.settings(),
                   available_baselines=selectors.available_baselines(dataset))
    errors = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            runs = services.start_runs(
                user=request.user, dataset=dataset, method=d["method"], seeds=d["seeds"],
                baselines=d["baselines"], config=form.config_for(d["method"]),
                baseline_config=form.config_for(RunMethod.ZERO_SHOT), shards=d["shards"],
                backend=d["backend"], model=d["model"], limit=d["limit"],
                backend_options={"base_url": d["base_url"]} if d.get("base_url") else {})
            run = runs[0]
            # Tagged: the live page removes it once the run is no longer queued.
            messages.success(request, f"Run {run.pk} is queued." if len(runs) == 1 else
                             f"Runs {', '.join(str(r.pk) for r in runs)} are queued, one per seed.",
                             extra_tags="run-queued")
            return redirect("runs:detail", pk=run.pk)
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"run": exc.messages}
    elif request.method == "POST":
        errors = form.errors
    return render(request, "runs/new.html", {"dataset": dataset, "form": form, "errors": errors, "defaults": defaults},
                  status=400 if errors else 200)


@require_GET
def run_estimate(request: HttpRequest, pk: int) -> HttpResponse:
    """The run form's cost estimate for its current values (loaded by htmx as the form changes)."""
    dataset = get_dataset(request.user, pk)
    permissions.require(role_of(request.user, dataset), permissions.WRITE_LABELS, "Starting a run")
    form = RunForm(request.GET, available_baselines=selectors.available_baselines(dataset))
    context: dict = {"problems": None, "estimate": None}
    if not form.is_valid():
        context["problems"] = ["Complete the form to see an estimate."]
        return render(request, "runs/_estimate.html", context)
    d = form.cleaned_data
    n = dataset_size(dataset)
    n = min(n, d["limit"] or n)
    try:
        seeds = services.check_seeds(d["seeds"])
        icm = services.run_config(d["method"], form.config_for(d["method"]), n, dataset.task_config)
        base = services.run_config(RunMethod.ZERO_SHOT, form.config_for(RunMethod.ZERO_SHOT), n,
                                   dataset.task_config)
        context["estimate"] = start_estimate(dataset, method=d["method"], seeds=seeds, baselines=d["baselines"],
                                             backend=d["backend"], model=d["model"], n=n, icm_config=icm,
                                             baseline_config=base)
    except ValidationError as exc:
        context["problems"] = exc.messages
        return render(request, "runs/_estimate.html", context)
    context["n"] = n
    return render(request, "runs/_estimate.html", context)


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = selectors.get_run(request.user, pk)
    snap = snapshot(run, detail=selectors.sees_failures(request.user, run))
    return render(request, "runs/detail.html", {"run": run, "snap": snap})


def _run_action(request: HttpRequest, pk: int, action) -> HttpResponse:
    """Cancel or resume: the service decides; htmx gets the live fragment back, a form post the page."""
    run = selectors.get_run(request.user, pk)
    try:
        run = action(user=request.user, run=run)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    if request.headers.get("HX-Request") == "true":
        snap = snapshot(run)
        return render(request, "runs/_live.html", {"snap": snap,
                                                    "pushed": True})
    return redirect("runs:detail", pk=pk)


@require_POST
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _run_action(request, pk, services.cancel_run)


@require_POST
def run_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _run_action(request, pk, services.resume_run)

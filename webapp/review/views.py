"""Review pages: disagreement queues with keyboard verdicts, the agreement dashboard, gold spot-checks,
blind labeling. Every page checks the user's role in the dataset; annotators see only blind labeling."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from webapp.datasets import permissions
from webapp.datasets.models import LabelSet, LabelSetKind, Role
from webapp.datasets.selectors import (
    dataset_label_sets,
    examples_by_id,
    get_dataset,
    get_dataset_with_label_sets,
    get_example,
    role_of,
)
from webapp.ids import as_id
from webapp.runs.selectors import run_limits

from . import exports, selectors, services
from .models import VerdictKind

VERDICT_KEYS = [(str(i), kind, label) for i, (kind, label) in enumerate(VerdictKind.choices, start=1)]
QUEUE_LIST = 50
CORRECTIONS_PER_PAGE = 200


def _reader_dataset(request: HttpRequest, pk: int):
    dataset = get_dataset(request.user, pk)
    permissions.require_label_reader(role_of(request.user, dataset))
    return dataset


def _reader_dataset_and_sets(request: HttpRequest, pk: int) -> tuple:
    """The dataset and the user's label sets of it, read together (the queue's every step needs both)."""
    dataset, sets = get_dataset_with_label_sets(request.user, pk)
    permissions.require_label_reader(role_of(request.user, dataset))
    return dataset, sets


def _comparison(request: HttpRequest, sets: list[LabelSet], params=None):
    """The label sets chosen in the query string (defaults: the latest ICM set and the latest gold), among
    the user's sets of the dataset."""
    params = request.GET if params is None else params
    model, gold, humans = selectors.chosen_sets(sets, params.get("model"), params.get("gold"),
                                                params.getlist("humans"))
    if model is None or gold is None:
        return None
    return selectors.compare(model, gold, [h for h in humans if h.pk not in (model.pk, gold.pk)])


def _query(comp, cell: str | None = None, index: int | None = None) -> str:
    params: list[tuple[str, str | int]] = [("model", comp.model.pk), ("gold", comp.gold.pk)]
    params += [("humans", h.pk) for h in comp.humans]
    if cell is not None:
        params.append(("cell", cell))
    if index is not None:
        params.append(("i", index))
    return urlencode(params)


def _queue_url(dataset, query: str) -> str:
    return f"{reverse('review:queue', args=[dataset.pk])}?{query}"


def _is_item_swap(request: HttpRequest) -> bool:
    """An htmx request from the queue page for the next item alone (the page's links and verdict buttons
    swap the item and the listing; the rest of the page stays)."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Target") == "review-layout"


def _queue_context(request: HttpRequest, dataset, params, *, full: bool, sets: list[LabelSet], comp=None) -> dict:
    """What the queue page shows for the item that `params` (the page's query) names. `full`: the whole
    page (set pickers, contingency, gold-wrong count); else the item and the listing only. `sets`: the
    user's sets of the dataset; `comp`: the comparison, when the caller has it already."""
    role = role_of(request.user, dataset)
    comp = _comparison(request, sets, params) if comp is None else comp
    context: dict = {"dataset": dataset, "sets": sets, "comp": comp, "verdict_keys": VERDICT_KEYS,
                     "human_sets": [ls for ls in sets if ls.kind == LabelSetKind.HUMAN],
                     "can_judge": permissions.allows(role, permissions.WRITE_LABELS)}
    if full:
        # Only owners adjudicate: the count is not read for the reviewers paging the queue.
        can_adjudicate = permissions.allows(role, permissions.MANAGE)
        context.update(can_adjudicate=can_adjudicate,
                       gold_wrong=can_adjudicate and selectors.gold_wrong_count(dataset))
    if comp is None:
        return context
    rows = comp.cell_rows()
    first = next((r["key"] for r in rows if r["disagree"]), rows[0]["key"] if rows else "")
    cell = params.get("cell") or first
    # ?example=ID (a data-view row's link): the queue and place that hold that example.
    wanted = as_id(params.get("example")) if params.get("example") else None
    holding = next(((c, m.index(wanted)) for c, m in comp.cells.items() if wanted in m), None)
    if holding:
        cell = holding[0]
    members = comp.cells.get(cell, [])
    try:
        # One past the last item is the queue's end (where a verdict on the last item leads).
        index = holding[1] if holding else min(max(int(params.get("i", 0)), 0), len(members))
    except ValueError:
        index = 0
    cell_query = _query(comp, cell)
    context.update(rows=rows, cell=cell, index=index, total=len(members), base_query=_query(comp),
                   cell_query=cell_query, humans_selected=[h.pk for h in comp.humans],
                   item_url=_queue_url(dataset, _query(comp, cell, index)))
    if members and index == len(members):
        can_adjudicate = permissions.allows(role, permissions.MANAGE)
        context.update(finished=True, judged=selectors.judged_by(request.user, dataset, members),
                       can_adjudicate=can_adjudicate, gold_wrong=can_adjudicate and selectors.gold_wrong_count(dataset),
                       prev_query=_query(comp, cell, index - 1),
                       listing=_listing(cell_query, [comp.names[ex] for ex in members[:QUEUE_LIST]],
                                        [comp.scores.get(ex) for ex in members[:QUEUE_LIST]], index,
                                        _judged(request, dataset, members[:QUEUE_LIST])))
    elif members:
        # The listing shows ids only (kept with the cached comparison): the examples' fields (their
        # text) are read for the item alone.
        context["listing"] = _listing(cell_query, [comp.names[ex] for ex in members[:QUEUE_LIST]],
                                      [comp.scores.get(ex) for ex in members[:QUEUE_LIST]], index,
                                      _judged(request, dataset, members[:QUEUE_LIST]))
        context["item"] = selectors.item_context(comp, dataset, members[index])
        context["prev_query"] = _query(comp, cell, max(index - 1, 0))
        context["next_query"] = _query(comp, cell, min(index + 1, len(members) - 1))
    return context


def _judged(request: HttpRequest, dataset, shown: list[int]) -> list[bool]:
    judged = selectors.judged_ids(request.user, dataset, shown)
    return [ex in judged for ex in shown]


def _listing(cell_query: str, names: list[str], scores: list[float | None], current: int,
             judged: list[bool] | None = None) -> str:
    """The queue listing's items, escaped. Built here rather than in a template loop (fifty items of a few
    variables each were a third of an item's rendering, and every step through a queue renders them), and
    with the query escaped once: `format_html` escaped every argument of every item, 400 calls a step.
    The ids are the only dataset text and are escaped each; the index and score are numbers made here."""
    query = escape(cell_query)
    items = []
    judged = judged or [False] * len(names)
    for i, (name, score, done) in enumerate(zip(names, scores, judged, strict=True)):
        classes = " ".join(c for c, on in (("current", i == current), ("judged", done)) if on)
        mark = f' class="{classes}"' if classes else ""
        shown = "" if score is None else f"{score:.2f}"
        tick = ' <span class="judged-mark" title="you gave a verdict here">✓</span>' if done else ""
        items.append(f'<li{mark}><a href="?{query}&amp;i={i}" hx-get="?{query}&amp;i={i}" hx-push-url="true">'
                     f'{escape(name)}</a> <span class="muted">{shown}</span>{tick}</li>')
    return mark_safe("".join(items))  # every piece is escaped above or made here


def _item_swap(request: HttpRequest, dataset, params, **known) -> HttpResponse:
    context = {**_queue_context(request, dataset, params, full=False, **known), "swap": True}
    return render(request, "review/_queue_item.html", context)


@require_GET
def queue(request: HttpRequest, pk: int) -> HttpResponse:
    dataset, sets = _reader_dataset_and_sets(request, pk)
    if _is_item_swap(request):
        response = _item_swap(request, dataset, request.GET, sets=sets)
    else:
        response = render(request, "review/queue.html",
                          _queue_context(request, dataset, request.GET, full=True, sets=sets))
    response["Vary"] = "HX-Request, HX-Target"  # one address, two answers: the page or its item
    return response


@require_POST
def verdict(request: HttpRequest, pk: int) -> HttpResponse:
    dataset, sets = _reader_dataset_and_sets(request, pk)
    comp = _comparison(request, sets)
    if comp is None:
        raise Http404("Choose a model label set and a gold label set first.")
    example = get_example(dataset, request.POST.get("example"))
    context = {"labels": {f"{ls.name} v{ls.version}": comp.labels[ls.pk].get(example.pk) for ls in comp.sets},
               "label_sets": [ls.pk for ls in comp.sets], "score": comp.scores.get(example.pk)}
    try:
        services.give_verdict(user=request.user, dataset=dataset, example=example,
                              verdict=request.POST.get("verdict", ""), note=request.POST.get("note", ""),
                              context=context)
        step = 1
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        step = 0  # a refused verdict stays on its item, with the message
    cell = request.POST.get("cell") or comp.cell_of(example.pk)
    members = comp.cells.get(cell, [])
    # After the last item, the queue's end: no item there takes another key press as a verdict.
    index = members.index(example.pk) + step if example.pk in members else 0
    query = _query(comp, cell, min(index, len(members)))
    if _is_item_swap(request):
        # The page swaps in the next item and shows its address: no redirect and second request.
        response = _item_swap(request, dataset, QueryDict(query), sets=sets, comp=comp)
        response["HX-Push-Url"] = _queue_url(dataset, query)
        return response
    return redirect(_queue_url(dataset, query))


@require_POST
def undo(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _reader_dataset(request, pk)
    last = services.undo_last_verdict(user=request.user, dataset=dataset)
    messages.info(request, f"Undid your verdict on {last.example.external_id}." if last else "Nothing to undo.")
    target = request.POST.get("back", "")
    return redirect(target if target.startswith(f"/datasets/{dataset.pk}/") else f"/datasets/{dataset.pk}/review/")


@require_POST
def adjudicate(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _reader_dataset(request, pk)
    base = selectors.readable_label_set(request.user, dataset, request.POST.get("gold"))
    try:
        new = services.adjudicate_from_verdicts(user=request.user, dataset=dataset, base=base)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("review:queue", pk=dataset.pk)
    changes = new.configuration["changes"]
    messages.success(request, f"Gold {new.name} v{new.version}: {changes} item{'' if changes == 1 else 's'} corrected.")
    return redirect(f"/datasets/{dataset.pk}/agreement/?gold={new.pk}")


def _dashboard_inputs(request: HttpRequest, dataset, sets: list[LabelSet]) -> tuple:
    """The gold and the sets the dashboard (and its download) compare: those chosen, else the latest gold and
    selectors.default_compared."""
    golds = [ls for ls in sets if ls.kind == LabelSetKind.GOLD]
    gold_id = request.GET.get("gold")
    gold = selectors.readable_label_set(request.user, dataset, gold_id) if gold_id else (golds[-1] if golds else None)
    chosen = request.GET.getlist("labelsets")
    compared = ([selectors.readable_label_set(request.user, dataset, x) for x in chosen] if chosen
                else selectors.default_compared(sets))
    return golds, gold, compared


@require_GET
def dashboard(request: HttpRequest, pk: int) -> HttpResponse:
    dataset, sets = _reader_dataset_and_sets(request, pk)
    golds, gold, compared = _dashboard_inputs(request, dataset, sets)
    report = selectors.agreement_report(dataset, compared, gold)
    names = {ls.pk: f"{ls.name} v{ls.version}" for ls in sets}
    limits = run_limits([ls.pk for ls in compared])
    for a in report["accuracy"]:  # like with like: which examples a run's set covers (–: no run made it)
        limit = limits.get(a["label_set"], "–")
        a["limit"] = "all" if limit is None else limit
    return render(request, "review/dashboard.html", {
        "dataset": dataset, "sets": sets, "golds": golds, "gold": gold, "compared": compared, "report": report,
        "names": names, "chosen": [ls.pk for ls in compared],
        "query": urlencode([("gold", gold.pk if gold else "")] + [("labelsets", ls.pk) for ls in compared]),
    })


@require_GET
def dashboard_export(request: HttpRequest, pk: int) -> HttpResponse:
    dataset, sets = _reader_dataset_and_sets(request, pk)
    _, gold, compared = _dashboard_inputs(request, dataset, sets)
    return exports.report_response(selectors.agreement_report(dataset, compared, gold), request.GET.get("format"))


@require_GET
def verdicts_export(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _reader_dataset(request, pk)
    return exports.verdicts_response(dataset, request.GET.get("format"))


@require_GET
def corrections(request: HttpRequest, pk: int) -> HttpResponse:
    """The history of the gold labels: every version made by correcting another, and what changed."""
    dataset = _reader_dataset(request, pk)
    page = Paginator(selectors.gold_corrections(dataset), CORRECTIONS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "review/corrections.html", {"dataset": dataset, "page": page,
                                                       "versions": selectors.gold_versions(dataset)})


# -- gold spot-checks -------------------------------------------------------------------------------------------

@require_GET
def spot_checks(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _reader_dataset(request, pk)
    checks = selectors.spot_checks_of(dataset)
    golds = dataset_label_sets(request.user, dataset).filter(kind=LabelSetKind.GOLD).order_by("-version")
    return render(request, "review/spotchecks.html", {
        "dataset": dataset, "checks": [(c, selectors.spot_check_result(c)) for c in checks], "golds": golds,
        "can_judge": permissions.allows(role_of(request.user, dataset), permissions.WRITE_LABELS)})


@require_POST
def spot_check_new(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = _reader_dataset(request, pk)
    try:
        gold = selectors.readable_label_set(request.user, dataset, request.POST.get("gold"))
        check = services.create_spot_check(user=request.user, dataset=dataset, gold=gold,
                                           size=int(request.POST.get("size", "0") or 0),
                                           seed=int(request.POST.get("seed", "0") or 0))
    except (ValidationError, ValueError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        return redirect("review:spotchecks", pk=dataset.pk)
    return redirect("review:spotcheck", pk=check.pk)


@require_GET
def spot_check(request: HttpRequest, pk: int) -> HttpResponse:
    """Blind labeling of the sample: no gold, no model label on this page. Results are a separate page."""
    check = selectors.get_spot_check(request.user, pk)  # as the API: 404 unless a label reader's
    items = selectors.spot_check_items_for(request.user, check)
    todo = [x for x in items if x["answer"] is None]
    current = todo[0] if todo else None
    # Blind: the fields that carry labels or answers are left out, whoever labels (as for annotators).
    fields = permissions.visible_fields(Role.ANNOTATOR, current["item"].example.fields) if current else {}
    return render(request, "review/spotcheck.html", {
        "check": check, "dataset": check.dataset, "items": items, "current": current,
        "done": len(items) - len(todo), "fields": fields,
        # The example as the model is asked about it (the raw template with {question} said nothing).
        "prompt": selectors.annotation_prompt(check.dataset, current["item"].example, fields) if current else None})


@require_POST
def spot_check_answer(request: HttpRequest, pk: int) -> HttpResponse:
    check = selectors.get_spot_check(request.user, pk)  # as the API: 404 unless a label reader's
    item = selectors.get_spot_check_item(check, item=request.POST.get("item"))
    services.answer_spot_check(user=request.user, item=item, value=request.POST.get("value") == "true")
    return redirect("review:spotcheck", pk=check.pk)


@require_GET
def spot_check_result(request: HttpRequest, pk: int) -> HttpResponse:
    check = selectors.get_spot_check(request.user, pk)  # as the API: 404 unless a label reader's
    result = selectors.spot_check_result(check)
    candidates = examples_by_id(check.dataset, result["candidates"])
    return render(request, "review/spotcheck_result.html", {
        "check": check, "dataset": check.dataset, "result": result,
        # Each item's own fields, as the queue shows them (search_text is the index's lowercased copy).
        "candidates": [(candidates[ex], selectors.example_text(candidates[ex]), result["gold"][ex])
                       for ex in result["candidates"]],
        "can_correct": permissions.allows(role_of(request.user, check.dataset), permissions.MANAGE)})


@require_POST
def spot_check_correct(request: HttpRequest, pk: int) -> HttpResponse:
    check = selectors.get_spot_check(request.user, pk)  # as the API: 404 unless a label reader's
    result = selectors.spot_check_result(check)
    chosen = {int(x) for x in request.POST.getlist("examples") if x.isdigit()} & set(result["candidates"])
    try:
        new = services.correct_gold(user=request.user, dataset=check.dataset, base=check.gold,
                                    corrections={ex: not result["gold"][ex] for ex in chosen},
                                    reason=request.POST.get("reason", "") or f"spot-check {check.pk}")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("review:spotcheck-result", pk=check.pk)
    messages.success(request, f"Gold {new.name} v{new.version} made with {len(chosen)} corrections.")
    return redirect("datasets:labelset", pk=new.pk)


# -- blind annotation -------------------------------------------------------------------------------------------

@require_GET
def annotate(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_dataset(request.user, pk)
    role = role_of(request.user, dataset)
    permissions.require(role, permissions.ANNOTATE, "Labeling")
    after = request.GET.get("after", "")
    after = int(after) if after.isdigit() and len(after) <= 9 else None  # a position; anything else: the start
    current, done, total = selectors.next_to_label(request.user, dataset, after)
    progress = None
    if permissions.reads_labels(role):
        progress = selectors.annotator_progress(dataset, total)
    fields = permissions.visible_fields(role, current.fields) if current else {}
    return render(request, "review/annotate.html", {
        "dataset": dataset, "current": current, "done": done, "total": total, "progress": progress,
        "fields": fields, "prompt": selectors.annotation_prompt(dataset, current, fields) if current else None})



@require_POST
def annotate_label(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_dataset(request.user, pk)
    example = get_example(dataset, request.POST.get("example"))
    services.annotate(user=request.user, dataset=dataset, example=example, value=request.POST.get("value") == "true")
    # On from here: an example skipped before this one comes back after the rest.
    return redirect(f"{reverse('review:annotate', args=[dataset.pk])}?after={example.position}")


@require_POST
def annotate_undo(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_dataset(request.user, pk)
    permissions.require(role_of(request.user, dataset), permissions.ANNOTATE, "Labeling")
    undone = services.undo_annotation(user=request.user, dataset=dataset)
    position = get_example(dataset, undone).position if undone else None
    if position:  # the undone example next, not an example skipped before it
        return redirect(f"{reverse('review:annotate', args=[dataset.pk])}?after={position - 1}")
    return redirect("review:annotate", pk=dataset.pk)

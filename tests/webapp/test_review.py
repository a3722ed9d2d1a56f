"""Review and audit: queues, verdicts (concurrent ones both kept), spot-checks and gold versions, blind
annotation and what annotators can never read, the agreement API, the Alpaca human votes."""

from __future__ import annotations

import re
import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from webapp.datasets.models import Example, LabelSet, Membership, Role
from webapp.datasets.services import create_dataset, import_label_set
from webapp.review import selectors, services
from webapp.review.models import GoldCorrection, Verdict
from webapp.settings import redis_caches

from .conftest import api_client, jsonl, make_user

ROWS = [  # groups of two answers to one question; gold: the first of each pair is true
    {"id": f"q{i // 2}-{i % 2}", "question": f"Question {i // 2}?", "choice": f"answer {i}",
     "answer": f"{i // 2}-{i % 2}", "label": i % 2 == 0, "consistency_id": f"g{i // 2}",
     "category": "easy" if i < 8 else "hard"}
    for i in range(16)
]
# The model agrees with gold except on q1-0, q1-1 (both flipped) and q5-1; confidences differ.
MODEL = {r["id"]: (r["label"], 0.5 + i / 10) for i, r in enumerate(ROWS)}
MODEL["q1-0"] = (False, 3.0)
MODEL["q1-1"] = (True, 0.2)
MODEL["q5-1"] = (True, 1.5)


@pytest.fixture
def audit(owner):
    ds = create_dataset(owner=owner, filename="qa.jsonl", data=jsonl(ROWS), task="claims", consistency="key:answer",
                        name="Audit")
    rows = [{"id": k, "label": v, "score": s if v else -s} for k, (v, s) in MODEL.items()]
    model = import_label_set(user=owner, dataset=ds, filename="icm.jsonl", data=jsonl(rows), kind="icm", name="icm")
    human_rows = [{"id": r["id"], "label": r["label"] if i not in (0, 4, 5) else not r["label"]}
                  for i, r in enumerate(ROWS)]
    human = import_label_set(user=owner, dataset=ds, filename="h.jsonl", data=jsonl(human_rows), kind="human",
                             name="alice")
    gold = ds.label_sets.get(kind="gold")
    return ds, model, gold, human


def _example(ds, ext):
    return Example.objects.get(dataset=ds, external_id=ext)


def test_contingency_cells_and_ordering(audit):
    ds, model, gold, human = audit
    comp = selectors.compare(model, gold, [human])
    counts = {row["key"]: row["count"] for row in comp.cell_rows()}
    assert sum(counts.values()) == 16
    # model x gold x human: q1-0 is F,T,T; q1-1 T,F,F; q5-1 T,F,F; q0-0 T,T,F ...
    assert counts["FTT"] == 1 and counts["TFF"] == 2
    # Most informative first: q5-1 (score 1.5) before q1-1 (0.2) in the same cell.
    ordered = [Example.objects.get(pk=pk).external_id for pk in comp.cells["TFF"]]
    assert ordered == ["q5-1", "q1-1"]
    item = selectors.item_context(comp, ds, _example(ds, "q1-1").pk)
    assert [s["example"].external_id for s in item["siblings"]] == ["q1-0", "q1-1"]
    assert item["conflicts"] == []  # different answers, model says F then T: no rule broken
    item = selectors.item_context(comp, ds, _example(ds, "q5-1").pk)
    assert item["conflicts"] == [{"with": "q5-0", "kind": "contradiction"}]  # two answers both True


def test_the_cached_comparison_follows_every_label_write(audit, owner):
    ds, model, gold, _human = audit
    annie = make_user("annie")
    Membership.objects.create(dataset=ds, user=annie, role=Role.ANNOTATOR)
    ex = _example(ds, "q0-0")
    services.annotate(user=annie, dataset=ds, example=ex, value=False)
    blind = LabelSet.objects.get(dataset=ds, annotator=annie)

    def cell(value_set):
        comp = selectors.compare(LabelSet.objects.get(pk=model.pk), LabelSet.objects.get(pk=gold.pk),
                                 [LabelSet.objects.get(pk=value_set.pk)])
        return comp.cell_of(ex.pk), comp.labels[value_set.pk].get(ex.pk)

    assert cell(blind) == ("TTF", False)
    assert cell(blind) == ("TTF", False)  # the second read is the cached one
    services.annotate(user=annie, dataset=ds, example=ex, value=True)  # changed in place
    assert cell(blind) == ("TTT", True)
    assert services.undo_annotation(user=annie, dataset=ds) == ex.pk  # removed
    assert cell(blind) == ("TT-", None)


def test_the_queue_page_works_with_its_cache_down(audit, owner, client, settings):
    # A real Redis cache at a port where nothing listens: every cache call fails to connect (Django
    # rebuilds its cache handlers when the setting changes).
    settings.CACHES = redis_caches("redis://127.0.0.1:9/0")
    ds, model, gold, _human = audit
    client.force_login(owner)
    resp = client.get(f"/datasets/{ds.pk}/review/?model={model.pk}&gold={gold.pk}")
    assert resp.status_code == 200 and resp.context["comp"].cell_of(_example(ds, "q1-0").pk) == "FT"


def test_gold_wrong_count_counts_unanimous_standing_verdicts(audit, owner):
    ds, _model, _gold, _human = audit
    rita = make_user("rita")
    Membership.objects.create(dataset=ds, user=rita, role=Role.REVIEWER)
    a, b, c, d = (_example(ds, x) for x in ("q0-0", "q1-0", "q2-0", "q3-0"))
    services.give_verdict(user=owner, dataset=ds, example=a, verdict="gold_wrong")
    services.give_verdict(user=rita, dataset=ds, example=a, verdict="gold_wrong")  # unanimous: counts
    services.give_verdict(user=owner, dataset=ds, example=b, verdict="gold_wrong")
    services.give_verdict(user=rita, dataset=ds, example=b, verdict="icm_wrong")  # disputed: not counted
    services.give_verdict(user=rita, dataset=ds, example=c, verdict="icm_wrong")
    services.give_verdict(user=owner, dataset=ds, example=c, verdict="gold_wrong")
    services.undo_last_verdict(user=owner, dataset=ds)  # retracted: c has no gold-wrong verdict standing
    services.give_verdict(user=rita, dataset=ds, example=d, verdict="ambiguous")
    services.undo_last_verdict(user=rita, dataset=ds)
    services.give_verdict(user=owner, dataset=ds, example=d, verdict="gold_wrong")  # the other one retracted
    assert services.gold_wrong_examples(ds) == sorted([a.pk, d.pk])
    assert selectors.gold_wrong_count(ds) == 2


def test_verdicts_are_kept_a_new_one_replaces_the_own_standing_one_undo_retracts_own_only(audit, owner):
    ds, _model, _gold, _human = audit
    reviewer = make_user("rita")
    Membership.objects.create(dataset=ds, user=reviewer, role=Role.REVIEWER)
    ex = _example(ds, "q1-0")
    services.give_verdict(user=owner, dataset=ds, example=ex, verdict="gold_wrong", note="model is right")
    services.give_verdict(user=reviewer, dataset=ds, example=ex, verdict="ambiguous")
    services.give_verdict(user=owner, dataset=ds, example=ex, verdict="icm_wrong")
    undone = services.undo_last_verdict(user=reviewer, dataset=ds)
    assert undone.verdict == "ambiguous" and undone.retracted is not None
    verdicts = list(Verdict.objects.filter(example=ex).order_by("id"))
    # The owner's second verdict replaced their first (kept, withdrawn); the reviewer's undo withdrew theirs.
    assert [(v.user.username, v.verdict, v.retracted is None) for v in verdicts] == [
        ("olivia", "gold_wrong", False), ("rita", "ambiguous", False), ("olivia", "icm_wrong", True)]
    assert services.undo_last_verdict(user=reviewer, dataset=ds) is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_verdicts_on_one_item_are_both_kept(owner):
    ds = create_dataset(owner=owner, filename="qa.jsonl", data=jsonl(ROWS), task="claims", name="Concurrent")
    reviewers = [make_user(f"r{i}") for i in range(4)]
    for r in reviewers:
        Membership.objects.create(dataset=ds, user=r, role=Role.REVIEWER)
    ex = _example(ds, "q2-0")
    barrier = threading.Barrier(len(reviewers))
    errors = []

    def judge(user):
        try:
            client = api_client(user)
            barrier.wait()
            resp = client.post(f"/api/datasets/{ds.pk}/verdicts/", {"example": ex.pk, "verdict": "gold_wrong"},
                               format="json")
            assert resp.status_code == 201, resp.content
        except Exception as exc:  # collected and re-raised in the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=judge, args=(r,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    kept = Verdict.objects.filter(example=ex)
    assert kept.count() == 4 and {v.user.username for v in kept} == {"r0", "r1", "r2", "r3"}


def test_verdict_api_and_exports(audit, owner_api):
    ds, *_ = audit
    ex = _example(ds, "q1-0")
    resp = owner_api.post(f"/api/datasets/{ds.pk}/verdicts/", {"example": ex.pk, "verdict": "gold_wrong",
                                                                "note": "=cmd"}, format="json")
    assert resp.status_code == 201 and resp.json()["example_id"] == "q1-0"
    assert owner_api.post(f"/api/datasets/{ds.pk}/verdicts/", {"example": ex.pk, "verdict": "meh"},
                          format="json").status_code == 400
    csv_text = owner_api.get(f"/api/datasets/{ds.pk}/verdicts/export/?format=csv").content.decode()
    assert csv_text.splitlines()[0].startswith("id,example,verdict,note")
    assert ",'=cmd," in csv_text  # formula neutralised
    data = owner_api.get(f"/api/datasets/{ds.pk}/verdicts/export/?format=json").json()
    assert data[0]["verdict"] == "gold_wrong"
    assert owner_api.post(f"/api/datasets/{ds.pk}/verdicts/undo/").json()["retracted"] is not None


def test_agreement_api(audit, owner_api):
    ds, model, gold, human = audit
    resp = owner_api.get(f"/api/datasets/{ds.pk}/agreement/?labelsets={model.pk},{human.pk}&gold={gold.pk}")
    assert resp.status_code == 200
    report = resp.json()
    acc = {a["label_set"]: a for a in report["accuracy"]}
    assert acc[model.pk]["n"] == 16 and acc[model.pk]["correct"] == 13
    assert acc[human.pk]["correct"] == 13
    for a in report["accuracy"]:
        assert 0 <= a["ci_low"] <= a["accuracy"] <= a["ci_high"] <= 1
    assert len(report["kappa"]) == 3  # model-human, model-gold, human-gold
    (mc,) = report["mcnemar"]
    assert (mc["first"], mc["second"]) == (model.pk, human.pk) and mc["n"] == 16
    assert report["stratified_by"] == "category"
    assert {r["stratum"] for r in report["by_stratum"]} == {"easy", "hard"}
    csv_text = owner_api.get(f"/api/datasets/{ds.pk}/agreement/export/?labelsets={model.pk}&gold={gold.pk}"
                             "&format=csv").content.decode()
    assert csv_text.startswith("statistic,first,second,stratum,n,value")
    assert owner_api.get(f"/api/datasets/{ds.pk}/agreement/?labelsets=x").status_code == 400


def test_agreement_puts_majority_balance_and_warnings_beside_each_accuracy(audit, owner, owner_api, client):
    """A set that says False to everything matches gold's majority rate; so does its report entry, flagged."""
    ds, model, gold, _human = audit
    all_false = import_label_set(user=owner, dataset=ds, filename="f.jsonl", kind="baseline", name="all-false",
                                 data=jsonl([{"id": r["id"], "label": False} for r in ROWS]))
    mirror = import_label_set(user=owner, dataset=ds, filename="m.jsonl", kind="baseline", name="mirror",
                              data=jsonl([{"id": r["id"], "label": not r["label"]} for r in ROWS]))
    ids = f"{model.pk},{all_false.pk},{mirror.pk}"
    report = owner_api.get(f"/api/datasets/{ds.pk}/agreement/?labelsets={ids}&gold={gold.pk}").json()
    acc = {a["label_set"]: a for a in report["accuracy"]}
    assert acc[all_false.pk]["accuracy"] == 0.5 and acc[all_false.pk]["majority_accuracy"] == 0.5
    assert acc[all_false.pk]["balance"] == 0.0 and acc[all_false.pk]["auroc"] is None
    assert acc[all_false.pk]["warnings"] == ["one_class", "no_better_than_majority"]
    assert acc[mirror.pk]["warnings"] == ["below_chance", "no_better_than_majority"]
    # The model set: 13 of 16 with scores; p against 0.5 is 0.0106, so no warning, and its AUROC is read.
    assert acc[model.pk]["warnings"] == [] and acc[model.pk]["balance"] == 9 / 16
    assert acc[model.pk]["auroc"] is not None and 0.5 < acc[model.pk]["auroc"] <= 1
    assert all("warnings" in r and "majority_accuracy" in r for r in report["by_stratum"])
    rows = owner_api.get(f"/api/datasets/{ds.pk}/agreement/export/?labelsets={ids}&gold={gold.pk}&format=csv"
                         ).content.decode().splitlines()
    assert rows[0].endswith("balance,majority_accuracy,auroc,warnings")
    assert any(r.startswith(f"accuracy,{all_false.pk},gold,,16,0.5,") and r.endswith(
        "0.0,0.5,,one_class no_better_than_majority") for r in rows)
    # The pages: the dashboard, the dataset's label sets and the label set's own page show the badges.
    client.force_login(owner)
    html = client.get(f"/datasets/{ds.pk}/agreement/?gold={gold.pk}&labelsets={all_false.pk}").content.decode()
    assert "warning-one_class" in html and "majority class" in html
    # Its confusion matrix is a table (gold rows, label columns): 8 gold-True items it called False.
    assert re.search(r"<th>gold T</th><td class=\"num\">0</td><td class=\"num\">8</td>", html)
    # Kappa with a one-class set is undefined, the same way in the API, the CSV and the page.
    kappas = {(k["first"], k["second"]): k for k in report["kappa"]}
    assert kappas[(model.pk, all_false.pk)]["kappa"] is None
    assert kappas[(model.pk, all_false.pk)]["undefined"] == "one_class"
    assert kappas[(model.pk, mirror.pk)]["undefined"] is None and kappas[(model.pk, mirror.pk)]["kappa"] < 0
    assert any(r.startswith(f"cohen_kappa,{model.pk},{all_false.pk},,16,,,,") and r.endswith(",one_class")
               for r in rows)
    html = client.get(f"/datasets/{ds.pk}/agreement/?gold={gold.pk}&labelsets={model.pk}&labelsets={all_false.pk}"
                      ).content.decode()
    assert "undefined: one class" in html
    html = client.get(f"/datasets/{ds.pk}/labelsets/").content.decode()
    assert html.count("warning-one_class") == 1 and html.count("warning-below_chance") == 1
    html = client.get(f"/labelsets/{all_false.pk}/").content.decode()
    assert "8 of 16" in html and "every label in the set is the same class" in html


def test_the_agreement_page_plots_each_sets_accuracy_and_interval(audit, owner, client):
    from webapp.review.templatetags.accuracy_plot import accuracy_plot

    ds, model, gold, human = audit
    client.force_login(owner)
    page = client.get(f"/datasets/{ds.pk}/agreement/?gold={gold.pk}&labelsets={model.pk}&labelsets={human.pk}")
    html = page.content.decode()
    assert page.status_code == 200 and html.count("<circle") == 2 and 'class="acc-plot"' in html
    report = {"accuracy": [{"label_set": 1, "accuracy": 0.5, "ci_low": 0.25, "ci_high": 0.75},
                           {"label_set": 2, "accuracy": None, "ci_low": None, "ci_high": None}]}
    plot = accuracy_plot(report, {1: "icm v1"})
    assert plot == {"rows": [{"y": 14, "name": "icm v1", "x": 280.0, "lo": 140.0, "hi": 420.0, "acc": 0.5}],
                    "height": 54}


def test_the_spot_check_pages_and_the_api_give_an_annotator_the_same_answer(audit, owner, owner_api, client):
    """Pages read through the API's selectors: what a reviewer may not see is a 404 on both."""
    ds, _model, gold, _human = audit
    check = owner_api.post(f"/api/datasets/{ds.pk}/spotchecks/", {"gold": gold.pk, "size": 4}, format="json").json()
    annie = make_user("annie")
    Membership.objects.create(dataset=ds, user=annie, role=Role.ANNOTATOR)
    client.force_login(annie)
    assert api_client(annie).get(f"/api/spotchecks/{check['id']}/").status_code == 404
    for url in (f"/spotchecks/{check['id']}/", f"/spotchecks/{check['id']}/result/"):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/spotchecks/{check['id']}/answer/", {"item": 1, "value": "true"}).status_code == 404
    client.force_login(owner)
    assert client.get(f"/spotchecks/{check['id']}/").status_code == 200
    assert client.post(f"/spotchecks/{check['id']}/answer/", {"item": "nope", "value": "true"}).status_code == 404


def test_spot_check_is_stratified_and_corrections_make_a_new_gold_version(audit, owner, owner_api, client):
    ds, model, gold, _human = audit
    resp = owner_api.post(f"/api/datasets/{ds.pk}/spotchecks/", {"gold": gold.pk, "size": 8, "seed": 3},
                          format="json")
    assert resp.status_code == 201
    check = resp.json()
    values = dict(gold.labels.values_list("example_id", "value"))
    assert sum(values[ex] for ex in check["items"]) == 4  # 8 true / 8 false in gold: 4 of each drawn
    # The blind page shows no gold or model label.
    client.force_login(owner)
    page = client.get(f"/spotchecks/{check['id']}/").content.decode()
    assert "label set" not in page.lower() and "gold v" not in page.lower()
    # The reviewer contradicts gold on two items.
    flipped = check["items"][:2]
    for ex in check["items"]:
        answer = not values[ex] if ex in flipped else values[ex]
        r = owner_api.post(f"/api/spotchecks/{check['id']}/answers/", {"example": ex, "label": answer}, format="json")
        assert r.status_code == 201
    result = owner_api.get(f"/api/spotchecks/{check['id']}/").json()
    assert result["judgments"] == 8 and result["disagreements"] == 2 and result["error_rate"] == 0.25
    assert result["ci_low"] < 0.25 < result["ci_high"]
    # The results page lists the contradicted items with their own fields, not the search index's copy.
    page = client.get(f"/spotchecks/{check['id']}/result/").content.decode()
    shown = Example.objects.get(pk=flipped[0])
    text = re.search(rf"<td>{re.escape(shown.external_id)}</td><td>(.*?)</td>", page).group(1)
    # Its own fields in their own case (PostgreSQL's JSON keeps its own key order); not the lowercased copy.
    assert shown.fields["question"] in text and shown.fields["choice"] in text and text != shown.search_text
    resp = client.post(f"/spotchecks/{check['id']}/correct/", {"examples": [str(x) for x in flipped],
                                                                "reason": "typos in gold"})
    assert resp.status_code == 302
    v2 = LabelSet.objects.get(dataset=ds, kind="gold", version=2)
    assert v2.source == "adjudication" and v2.labels.count() == 16
    changed = dict(v2.labels.values_list("example_id", "value"))
    assert all(changed[ex] != values[ex] for ex in flipped)
    assert GoldCorrection.objects.filter(to_set=v2).count() == 2
    assert set(GoldCorrection.objects.values_list("reason", flat=True)) == {"typos in gold"}
    # The history of gold: the API and the page list each change, who made it and why.
    history = owner_api.get(f"/api/datasets/{ds.pk}/gold-corrections/").json()
    assert sorted((h["example"], h["old_value"], h["new_value"]) for h in history) == sorted(
        (ex, values[ex], not values[ex]) for ex in flipped)
    assert {(h["from_version"], h["to_version"], h["to_set"], h["user"], h["reason"]) for h in history} == {
        (1, 2, v2.pk, "olivia", "typos in gold")}
    page = client.get(f"/datasets/{ds.pk}/gold/corrections/").content.decode()
    flipped_ids = [Example.objects.get(pk=ex).external_id for ex in flipped]
    assert all(x in page for x in flipped_ids) and "typos in gold" in page and "gold v2" in page
    # Metrics against either gold version.
    r1 = owner_api.get(f"/api/datasets/{ds.pk}/agreement/?labelsets={model.pk}&gold={gold.pk}").json()
    r2 = owner_api.get(f"/api/datasets/{ds.pk}/agreement/?labelsets={model.pk}&gold={v2.pk}").json()
    assert r1["gold"]["version"] == 1 and r2["gold"]["version"] == 2
    assert r1["accuracy"][0]["n"] == r2["accuracy"][0]["n"] == 16


def test_blind_annotation_and_what_annotators_cannot_read(audit, owner, client):
    ds, model, gold, human = audit
    annie = make_user("annie")
    Membership.objects.create(dataset=ds, user=annie, role=Role.ANNOTATOR)
    api = api_client(annie)
    # Through the API: no label set but their own, no export, no runs, no agreement, no verdicts, no spot-checks.
    assert api.get(f"/api/datasets/{ds.pk}/labelsets/").json() == []
    for ls in (model, gold, human):
        for url in (f"/api/labelsets/{ls.pk}/", f"/api/labelsets/{ls.pk}/labels/",
                    f"/api/labelsets/{ls.pk}/export/", f"/api/labelsets/{ls.pk}/agreement/?other={gold.pk}"):
            assert api.get(url).status_code == 404, url
    for url in (f"/api/datasets/{ds.pk}/export/", f"/api/datasets/{ds.pk}/agreement/?labelsets={model.pk}",
                f"/api/datasets/{ds.pk}/verdicts/", f"/api/datasets/{ds.pk}/verdicts/export/",
                f"/api/datasets/{ds.pk}/gold-corrections/"):
        assert api.get(url).status_code == 403, url
    assert api.get("/api/runs/").json()["count"] == 0
    # Labeling blind through the API builds their own human label set.
    nxt = api.get(f"/api/datasets/{ds.pk}/annotations/").json()
    assert nxt["done"] == 0 and nxt["total"] == 16 and "label" not in nxt["example"]["fields"]
    assert api.post(f"/api/datasets/{ds.pk}/annotations/", {"example": nxt["example"]["id"], "label": True},
                    format="json").status_code == 201
    assert api.get(f"/api/datasets/{ds.pk}/annotations/").json()["done"] == 1
    own = api.get(f"/api/datasets/{ds.pk}/labelsets/").json()
    assert [x["name"] for x in own] == ["annie (blind)"] and own[0]["annotator"] == "annie"
    assert api.post(f"/api/datasets/{ds.pk}/annotations/undo/").status_code == 204
    assert api.get(f"/api/datasets/{ds.pk}/annotations/").json()["done"] == 0
    # Through the pages.
    client.force_login(annie)
    html = client.get(f"/datasets/{ds.pk}/").content.decode()
    assert "You label this dataset blind" in html
    assert "gold v1" not in html and "icm v1" not in html and "alice" not in html
    for url in (f"/labelsets/{gold.pk}/", f"/labelsets/{model.pk}/download/?format=csv"):
        assert client.get(url).status_code == 404, url
    for url in (f"/datasets/{ds.pk}/download/?format=csv", f"/datasets/{ds.pk}/review/",
                f"/datasets/{ds.pk}/agreement/", f"/datasets/{ds.pk}/spotchecks/", f"/datasets/{ds.pk}/runs/",
                f"/datasets/{ds.pk}/gold/corrections/",
                f"/datasets/{ds.pk}/runs/panel/"):
        assert client.get(url).status_code == 403, url
    assert "annie (blind)" in html  # her own set, and only hers
    newcomer = make_user("nico")
    Membership.objects.create(dataset=ds, user=newcomer, role=Role.ANNOTATOR)
    client.force_login(newcomer)
    html = client.get(f"/datasets/{ds.pk}/").content.decode()
    assert "You label blind: only your own label set is listed here" in html and "No label sets yet" not in html
    client.force_login(annie)
    page = client.get(f"/datasets/{ds.pk}/annotate/").content.decode()
    assert "Label blind" in page and "0 of 16 labeled" in page and "Annotators" not in page
    # The question as the model is asked it, filled in with this example (no template placeholders).
    prompt = re.search(r'<pre class="template" id="annotate-prompt">(.*?)</pre>', page, re.S).group(1)
    assert "answer 0" in prompt and "{" not in prompt
    # Skip: the next example; a skipped one comes back after the others.
    first, second = Example.objects.filter(dataset=ds).order_by("position")[:2]
    skipped = client.get(f"/datasets/{ds.pk}/annotate/?after={first.position}").content.decode()
    assert f"<h2>{second.external_id}</h2>" in skipped and 'data-key="s"' in skipped
    resp = client.post(f"/datasets/{ds.pk}/annotate/label/", {"example": second.pk, "value": "false"})
    assert resp.url.endswith(f"?after={second.position}")
    client.post(f"/datasets/{ds.pk}/annotate/label/", {"example": first.pk, "value": "false"})
    assert "2 of 16 labeled" in client.get(f"/datasets/{ds.pk}/annotate/").content.decode()
    # The owner's guidelines are what an annotator reads first.
    client.force_login(owner)
    client.post(f"/datasets/{ds.pk}/guidelines/", {"guidelines": "Judge the <b>claim</b> alone.\nIgnore typos."})
    client.force_login(annie)
    page = client.get(f"/datasets/{ds.pk}/annotate/").content.decode()
    assert "<p>Judge the &lt;b&gt;claim&lt;/b&gt; alone.<br>Ignore typos.</p>" in page
    assert "Judge the &lt;b&gt;claim&lt;/b&gt; alone." in client.get(f"/datasets/{ds.pk}/settings/").content.decode()
    # The owner sees per-annotator progress.
    client.force_login(owner)
    page = client.get(f"/datasets/{ds.pk}/annotate/").content.decode()
    assert "annie" in page and "Annotators" in page


def test_annotators_do_not_see_label_like_fields(owner, paper_data):
    path = paper_data / "alpaca" / "alpaca_dev.json"
    ds = create_dataset(owner=owner, filename=path.name, data=path.read_bytes(), task="alpaca")
    annie = make_user("annie")
    Membership.objects.create(dataset=ds, user=annie, role=Role.ANNOTATOR)
    fields = api_client(annie).get(f"/api/datasets/{ds.pk}/examples/").json()["results"][0]["fields"]
    assert "candidate_label" not in fields and "confidence" not in fields and "question" in fields
    owner_fields = api_client(owner).get(f"/api/datasets/{ds.pk}/examples/").json()["results"][0]["fields"]
    assert "candidate_label" in owner_fields


def test_alpaca_votes_import_as_separate_human_label_sets(owner, paper_data):
    import json

    path = paper_data / "alpaca" / "alpaca_dev.json"
    rows = json.loads(path.read_text())
    ds = create_dataset(owner=owner, filename=path.name, data=path.read_bytes(), task="alpaca")
    votes = LabelSet.objects.filter(dataset=ds, kind="human").order_by("name")
    assert [v.name for v in votes] == ["human vote 1", "human vote 2", "human vote 3", "human vote 4"]
    first_rows = [(i, r) for i, r in enumerate(rows) if r.get("candidate_label")]
    for k, vote_set in enumerate(votes):
        labels = dict(vote_set.labels.values_list("example__external_id", "value"))
        assert len(labels) == len(rows)  # both orders of every comparison
        i, r = first_rows[0]
        assert labels[str(i)] == r["candidate_label"][k]
        assert labels[str(i + 1)] == (not r["candidate_label"][k])  # the swapped order
    # A single annotator against the majority: a real human baseline, measurable on the dashboard.
    gold = ds.label_sets.get(kind="gold")
    report = selectors.agreement_report(ds, list(votes), gold)
    assert all(0.5 < a["accuracy"] <= 1 for a in report["accuracy"])


def test_review_queue_page_and_verdict_flow(audit, owner, client):
    ds, model, gold, human = audit
    client.force_login(owner)
    url = f"/datasets/{ds.pk}/review/?model={model.pk}&gold={gold.pk}&humans={human.pk}"
    html = client.get(url).content.decode()
    assert "Contingency" in html and 'data-key="1"' in html and "Keys" in html
    page = client.get(url).context
    item = page["item"]
    # The item's score as a reader reads it: three decimals, not a float's 17 digits.
    assert f"<dt>Model score</dt><dd>{item['score']:.3f}</dd>" in html
    resp = client.post(f"/datasets/{ds.pk}/review/verdict/?model={model.pk}&gold={gold.pk}&humans={human.pk}",
                       {"example": item["example"].pk, "verdict": "gold_wrong", "cell": page["cell"]})
    assert resp.status_code == 302 and "i=" in resp.url
    assert Verdict.objects.filter(example=item["example"], user=owner).count() == 1
    dash = client.get(f"/datasets/{ds.pk}/agreement/?gold={gold.pk}&labelsets={model.pk}&labelsets={human.pk}")
    assert dash.status_code == 200 and "Wilson" in dash.content.decode()
    # Defaults: the latest ICM set and the latest gold. A set that is not this dataset's (or no set) is a 404.
    default = client.get(f"/datasets/{ds.pk}/review/").context["comp"]
    assert (default.model.pk, default.gold.pk, default.humans) == (model.pk, gold.pk, [])
    other = create_dataset(owner=owner, filename="o.jsonl", data=jsonl(ROWS[:2]), task="claims", name="Other")
    foreign = other.label_sets.get(kind="gold")
    for bad in (f"model={foreign.pk}", f"gold={foreign.pk}", "model=abc", f"humans={foreign.pk}", "gold=99999999"):
        assert client.get(f"/datasets/{ds.pk}/review/?{bad}").status_code == 404, bad


SWAP = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "review-layout"}  # what the queue page's htmx sends


def test_stepping_through_a_queue_swaps_the_item_alone(audit, owner, client):
    ds, model, gold, _human = audit
    client.force_login(owner)
    query = f"model={model.pk}&gold={gold.pk}&cell=TF"
    whole = client.get(f"/datasets/{ds.pk}/review/?{query}&i=1")
    swap = client.get(f"/datasets/{ds.pk}/review/?{query}&i=1", **SWAP)
    assert "Contingency" in whole.content.decode() and "<html" in whole.content.decode()
    fragment = swap.content.decode()
    # The same item, without the page around it: the layout htmx swaps, the item, its verdict buttons.
    assert "<html" not in fragment and "Contingency" not in fragment and "Vary" in swap
    assert fragment.lstrip().startswith('<div class="review-layout" id="review-layout"')
    assert "Item 2 of 2 · q1-1" in fragment and 'hx-post="/datasets/' in fragment and 'data-key="1"' in fragment
    # A verdict from the page's buttons answers with the next item and its address (no redirect).
    first = _example(ds, "q5-1")
    resp = client.post(f"/datasets/{ds.pk}/review/verdict/?model={model.pk}&gold={gold.pk}",
                       {"example": first.pk, "verdict": "gold_wrong", "cell": "TF"}, **SWAP)
    assert resp.status_code == 200 and "Item 2 of 2 · q1-1" in resp.content.decode()
    assert resp["HX-Push-Url"] == f"/datasets/{ds.pk}/review/?{query}&i=1"
    assert Verdict.objects.get(example=first, user=owner).verdict == "gold_wrong"
    # A refused verdict says why in the fragment (the page has no other place for the message).
    resp = client.post(f"/datasets/{ds.pk}/review/verdict/?model={model.pk}&gold={gold.pk}",
                       {"example": first.pk, "verdict": "nonsense", "cell": "TF"}, **SWAP)
    assert 'class="messages"' in resp.content.decode() and "verdict must be one of" in resp.content.decode()
    assert "Item 1 of 2 · q5-1" in resp.content.decode()  # refused: it stays on the item
    # Without htmx (no script), the same buttons post and redirect, as before.
    resp = client.post(f"/datasets/{ds.pk}/review/verdict/?model={model.pk}&gold={gold.pk}",
                       {"example": first.pk, "verdict": "ambiguous", "cell": "TF"})
    assert resp.status_code == 302 and resp.url.endswith(f"?{query}&i=1")


def test_a_queue_ends_after_its_last_item_and_a_second_verdict_replaces_the_first(audit, owner, client):
    ds, model, gold, _human = audit
    client.force_login(owner)
    query = f"model={model.pk}&gold={gold.pk}&cell=TF"
    post = f"/datasets/{ds.pk}/review/verdict/?model={model.pk}&gold={gold.pk}"
    last = _example(ds, "q1-1")  # the second of the cell's two items
    resp = client.post(post, {"example": last.pk, "verdict": "gold_wrong", "cell": "TF"}, **SWAP)
    html = resp.content.decode()
    assert resp["HX-Push-Url"] == f"/datasets/{ds.pk}/review/?{query}&i=2"
    # The end: no item and no verdict buttons, so a key pressed there records nothing.
    assert "End of this queue · 2 items" in html and 'name="verdict"' not in html
    assert "You have a verdict on 1 of its 2 items" in html
    assert 'id="adjudicate-at-end"' in html  # the owner adjudicates from here, without a reload
    assert client.get(f"/datasets/{ds.pk}/review/?{query}&i=2").status_code == 200  # the end has an address
    assert last.pk in services.gold_wrong_examples(ds)
    # The same reviewer answering again replaces their verdict (the history keeps both): one voice each.
    client.post(post, {"example": last.pk, "verdict": "icm_wrong", "cell": "TF"}, **SWAP)
    standing = Verdict.objects.filter(example=last, user=owner, retracted__isnull=True)
    assert [v.verdict for v in standing] == ["icm_wrong"]
    assert Verdict.objects.filter(example=last, user=owner).count() == 2
    assert last.pk not in services.gold_wrong_examples(ds)


def test_the_queue_listing_escapes_example_ids(owner, client):
    rows = [{"id": "<script>alert(1)</script>", "text": "a", "label": True}, {"id": "x&y", "text": "b", "label": True}]
    ds = create_dataset(owner=owner, filename="x.jsonl", data=jsonl(rows), task="claims", name="Escapes",
                        template="Item: {text}\nLabel:", consistency="none")
    import_label_set(user=owner, dataset=ds, filename="m.jsonl", kind="icm", name="m",
                     data=jsonl([{"id": r["id"], "label": False, "score": -1.0 - i} for i, r in enumerate(rows)]))
    client.force_login(owner)
    for extra in ({}, SWAP):  # the whole page and the swapped item both list the queue
        html = client.get(f"/datasets/{ds.pk}/review/", **extra).content.decode()
        listing = html[html.index('<aside class="queue-list">'):]
        assert "<script>alert(1)</script>" not in html
        assert ">&lt;script&gt;alert(1)&lt;/script&gt;</a>" in listing and ">x&amp;y</a>" in listing


def test_viewer_reads_review_pages_but_cannot_judge(audit, viewer, client):
    ds, _model, _gold, _human = audit
    Membership.objects.create(dataset=ds, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)
    assert client.get(f"/datasets/{ds.pk}/review/").status_code == 200
    ex = _example(ds, "q1-0")
    assert client.post(f"/datasets/{ds.pk}/review/verdict/", {"example": ex.pk, "verdict": "gold_wrong"}
                       ).status_code == 403
    assert Verdict.objects.count() == 0
    upload = SimpleUploadedFile("x.csv", b"id,label\nq0-0,1\n")
    assert client.post(f"/datasets/{ds.pk}/labelsets/import/", {"file": upload, "kind": "human"}).status_code == 403


def test_dataset_with_label_sets_reads_what_the_two_selectors_read(audit, owner):
    from django.http import Http404

    from webapp.datasets.selectors import dataset_label_sets, get_dataset, get_dataset_with_label_sets

    ds, _model, _gold, _human = audit
    annie, vic, stranger = make_user("annie"), make_user("vic"), make_user("stranger")
    Membership.objects.create(dataset=ds, user=annie, role=Role.ANNOTATOR)
    Membership.objects.create(dataset=ds, user=vic, role=Role.VIEWER)
    services.annotate(user=annie, dataset=ds, example=_example(ds, "q0-0"), value=True)
    empty = create_dataset(owner=owner, filename="e.jsonl", data=jsonl(ROWS[:2]), task="claims", name="Empty")
    LabelSet.objects.filter(dataset=empty).delete()
    Membership.objects.create(dataset=empty, user=annie, role=Role.ANNOTATOR)
    Membership.objects.create(dataset=empty, user=vic, role=Role.VIEWER)
    for user in (owner, annie, vic):
        for pk in (ds.pk, empty.pk):
            dataset, sets = get_dataset_with_label_sets(user, pk)
            expected = get_dataset(user, pk)
            assert (dataset.pk, dataset.my_role, dataset.owner_id) == (expected.pk, expected.my_role, expected.owner_id)
            assert [ls.pk for ls in sets] == [ls.pk for ls in
                                              dataset_label_sets(user, expected).order_by("kind", "name", "version")]
            assert all(ls.dataset is dataset for ls in sets)
    assert [ls.name for ls in get_dataset_with_label_sets(annie, ds.pk)[1]] == ["annie (blind)"]
    assert len(get_dataset_with_label_sets(owner, ds.pk)[1]) == 4
    for user, pk in ((stranger, ds.pk), (owner, "x"), (owner, 10**9)):
        with pytest.raises(Http404):
            get_dataset_with_label_sets(user, pk)

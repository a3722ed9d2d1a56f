"""Runs: validation before queueing, the run function, cancel and resume, the embedded worker and the
progress websocket. A deterministic fake backend drives the machinery; test_runs_model uses the real model."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.authtoken.models import Token

from webapp.datasets.models import Label, LabelSet, Membership, Role
from webapp.datasets.services import create_dataset
from webapp.runs import embedded
from webapp.runs.execution import execute_run
from webapp.runs.models import Run, RunStatus
from webapp.runs.progress import RunProgress
from webapp.runs.selectors import runs_of
from webapp.runs.services import create_run

from .conftest import api_client, jsonl
from .runs_helpers import (
    FAKE,
    ICM_FAST,
    TEMPLATE,
    advance,
    fake_dataset,
    fake_rows,
    labels_of,
    release_until,
    wait_for,
)

# The run's heartbeat thread has its own database connection: it must see the test's rows.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _run_settings(settings, tmp_path):
    settings.ICM_RUN_DISPATCH = "none"  # each test says how runs execute
    settings.ICM_CHECKPOINT_S = 0.2
    settings.ICM_PROGRESS_S = 0.05
    settings.ICM_RUN_LEASE_S = 4
    settings.ICM_WS_MIN_INTERVAL_S = 0.1
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


def _post_run(client, dataset, **body):
    payload = {"dataset": dataset.pk, "task": dataset.task, "backend": FAKE, **body}
    return client.post("/api/runs/", payload, format="json")


# -- validation: refused before anything is queued ----------------------------------------------------------

BAD_RUNS = [
    ({"config": {"alpha": -1}}, "config"),
    ({"config": {"iterations": 10, "temperature": 3}}, "config"),
    ({"config": {"readout": "psychic"}}, "config"),
    ({"config": {"semantics": "clever"}}, "config"),
    ({"config": {"mode": "reference", "demo_order": "labeled"}}, "config"),
    ({"config": {"anchor": "gold"}}, "config"),
    ({"config": {"anchor_weight": -2.0}}, "config"),
    ({"config": {"orient": "gold"}}, "config"),
    ({"config": {"complete": "yes"}}, "config"),
    ({"config": {"centre": "everywhere"}}, "config"),
    ({"config": {"folds": 1}}, "config"),
    ({"backend": "transformers", "model": "no-such-model"}, "model"),
    ({"backend": "quantum"}, "backend"),
    ({"backend": "openai", "model": "m"}, "backend"),  # no model server offered (ICM_OPENAI_BASE_URL unset)
    ({"backend": "transformers", "model": "/etc"}, "model"),
    ({"base_url": "http://127.0.0.1:9/x"}, "base_url"),
    ({"task": "gsm8k"}, "task"),
    ({"method": "oracle"}, "method"),
    ({"method": "bootstrap", "config": {"rounds": -2}}, "config"),
    ({"limit": 0}, "limit"),
    ({"hyperparameters": {"iterations": 10}}, "hyperparameters"),  # the settings' old name is not ignored
]


@pytest.mark.parametrize(("body", "field"), BAD_RUNS, ids=[f for _, f in BAD_RUNS])
def test_bad_runs_are_refused_before_queueing(body, field, owner, owner_api):
    ds = fake_dataset(owner)
    resp = _post_run(owner_api, ds, **body)
    assert resp.status_code == 400, resp.content
    assert field in resp.json(), resp.json()
    assert Run.objects.count() == 0


def test_gold_icl_needs_gold_everywhere(owner, owner_api):
    ds = fake_dataset(owner)
    ds.label_sets.all().delete()
    resp = _post_run(owner_api, ds, method="gold-icl")
    assert resp.status_code == 400 and "method" in resp.json()
    assert Run.objects.count() == 0


def test_viewers_and_strangers_cannot_start_runs(owner, viewer, stranger):
    ds = fake_dataset(owner)
    Membership.objects.create(dataset=ds, user=viewer, role=Role.VIEWER)
    assert _post_run(api_client(viewer), ds).status_code == 403
    assert _post_run(api_client(stranger), ds).status_code == 404
    assert _post_run(api_client(), ds).status_code == 401
    assert Run.objects.count() == 0


def test_run_api_is_scoped_to_members(owner, stranger, owner_api):
    ds = fake_dataset(owner)
    run = create_run(user=owner, dataset=ds, backend=FAKE, config=ICM_FAST)
    client = api_client(stranger)
    for method, url in (("get", f"/api/runs/{run.pk}/"), ("post", f"/api/runs/{run.pk}/cancel/"),
                        ("post", f"/api/runs/{run.pk}/resume/")):
        assert getattr(client, method)(url).status_code == 404
    assert client.get("/api/runs/").json()["count"] == 0
    assert owner_api.get("/api/runs/").json()["count"] == 1
    assert owner_api.get(f"/api/runs/{run.pk}/").json()["status"] == "queued"
    assert api_client().get(f"/api/runs/{run.pk}/").status_code == 401


# -- the run function -----------------------------------------------------------------------------------------

def test_icm_run_end_to_end_in_process(owner, owner_api):
    ds = fake_dataset(owner)
    resp = _post_run(owner_api, ds, config=ICM_FAST, seed=3)
    assert resp.status_code == 201, resp.content
    run_id = resp.json()["id"]
    assert resp.json()["status"] == "queued"
    assert execute_run(run_id) == "succeeded"
    assert execute_run(run_id).startswith("skipped")  # a redelivered message does nothing
    run = Run.objects.get(pk=run_id)
    assert run.status == RunStatus.SUCCEEDED and run.checkpoint is None and run.attempts == 1
    ls = run.label_set
    assert ls.kind == "icm" and ls.run == run and ls.from_run == run.pk and not ls.partial and ls.labels.count() == 24
    assert ls.configuration["seed"] == 3 and ls.configuration["config"]["iterations"] == 80
    p = run.progress
    assert p["labeled"] == 24 and p["gold_n"] == 24 and p["model_calls"] > 0 and p["computed_tokens"] > 0
    assert p["gold_agreement"] is not None and len(run.history) > 2
    # The finished run's label set is listed with the dataset's label sets.
    listed = owner_api.get(f"/api/datasets/{ds.pk}/labelsets/").json()
    assert any(x["id"] == ls.pk and x["kind"] == "icm" and x["run"] == run.pk for x in listed)
    run.delete()  # the label set stays and still names the run that wrote it
    assert owner_api.get(f"/api/labelsets/{ls.pk}/").json()["run"] == run_id


def test_baseline_runs(owner, owner_api):
    ds = fake_dataset(owner)
    resp = _post_run(owner_api, ds, config=ICM_FAST | {"batch_size": 64}, baselines=True)
    assert resp.status_code == 201, resp.content
    methods = sorted(Run.objects.values_list("method", flat=True))
    assert methods == ["gold-icl", "icm", "random-icl", "zero-shot"]
    for run in Run.objects.exclude(method="icm"):
        assert execute_run(run.pk) == "succeeded"
        run.refresh_from_db()
        assert run.label_set.kind == "baseline" and run.label_set.labels.count() == 24
        assert run.config["batch_size"] == 64
    gold_icl = Run.objects.get(method="gold-icl")
    assert gold_icl.progress["gold_agreement"] is not None


def test_seeds_queue_one_run_per_seed_and_the_method_table_aggregates_them(owner, owner_api, client):
    ds = fake_dataset(owner)
    resp = _post_run(owner_api, ds, config=ICM_FAST, seeds=[0, 1, 2], baselines=True)
    assert resp.status_code == 201, resp.content
    icm_runs = list(Run.objects.filter(method="icm").order_by("seed"))
    assert resp.json()["runs"] == [r.pk for r in icm_runs] and resp.json()["id"] == icm_runs[0].pk
    # Seeded methods once per seed; zero-shot and golden ICL (every demonstration shown: no seed changes its
    # labels) once.
    counts = {m: sorted(Run.objects.filter(method=m).values_list("seed", flat=True))
              for m in ("icm", "random-icl", "gold-icl", "zero-shot")}
    assert counts == {"icm": [0, 1, 2], "random-icl": [0, 1, 2], "gold-icl": [0], "zero-shot": [0]}
    for run in Run.objects.order_by("pk"):
        assert execute_run(run.pk) == "succeeded"
    assert len({r.label_set_id for r in Run.objects.all()}) == Run.objects.count()  # a label set each
    rows = {r["method"]: r for r in owner_api.get(f"/api/datasets/{ds.pk}/methods/").json()}
    icm = rows["icm"]
    assert icm["n_seeds"] == 3 and [e["seed"] for e in icm["seeds"]] == [0, 1, 2]
    accuracies = [e["gold"]["accuracy"] for e in icm["seeds"]]
    assert icm["accuracy"]["mean"] == pytest.approx(sum(accuracies) / 3)
    assert (icm["accuracy"]["min"], icm["accuracy"]["max"]) == (min(accuracies), max(accuracies))
    finals = {e["seed"]: e["final_u"] for e in icm["seeds"]}
    for e in icm["seeds"]:
        run = Run.objects.get(pk=e["run"])
        assert e["final_u"] == run.progress["final_u"] == run.progress["batch_u"]["0"]
        assert e["gold"]["n"] == run.label_set.labels.count() >= 20 and e["gold"]["majority_accuracy"] >= 0.5
    assert icm["pick"] == max(finals, key=lambda s: (finals[s], -s))
    assert [e["pick"] for e in icm["seeds"]].count(True) == 1
    picked = next(e for e in icm["seeds"] if e["pick"])["gold"]["accuracy"]
    assert icm["pick_is_most_accurate"] == (picked == max(accuracies))
    assert rows["zero-shot"]["n_seeds"] == 1 and rows["zero-shot"]["pick"] is None
    assert rows["bootstrap"]["n_seeds"] == 0 and rows["bootstrap"]["accuracy"]["mean"] is None
    # The last seed's end wrote the seeds' consensus: a label set of its own, each label's score the share of the
    # seeds that gave it, beside the pick on the page and in the API.
    agreed = icm["consensus"]
    assert agreed["seeds"] == [0, 1, 2] and 0 <= agreed["agreement"] <= 1 and agreed["gold"]["n"] >= 20
    label_set = LabelSet.objects.get(pk=agreed["label_set"])
    assert label_set.kind == "icm" and label_set.name == "ICM consensus"
    assert label_set.configuration["consensus"]["runs"] == sorted(e["run"] for e in icm["seeds"])
    votes = {e: [] for e in label_set.labels.values_list("example_id", flat=True)}
    for e in icm["seeds"]:
        for example, value in Label.objects.filter(label_set_id=e["label_set"]).values_list("example_id", "value"):
            votes[example].append(value)
    for label in label_set.labels.all():
        share = votes[label.example_id].count(label.value) / len(votes[label.example_id])
        assert share > 0.5 and label.score == pytest.approx(share)
    client.force_login(owner)
    assert "the consensus of the 3 seeds" in client.get(f"/datasets/{ds.pk}/runs/panel/").content.decode()
    # A run of other settings starts a new experiment: the table shows the latest one's seeds only.
    later = create_run(user=owner, dataset=ds, backend=FAKE, seed=5, config=ICM_FAST | {"iterations": 40})
    assert execute_run(later.pk) == "succeeded"
    rows = {r["method"]: r for r in owner_api.get(f"/api/datasets/{ds.pk}/methods/").json()}
    assert [e["run"] for e in rows["icm"]["seeds"]] == [later.pk] and rows["icm"]["consensus"] is None
    # A seed labeled one class shows its badge on the dataset page's table, counted over the seeds.
    Label.objects.filter(label_set=Run.objects.get(method="random-icl", seed=1).label_set).update(value=False)
    client.force_login(owner)
    panel = client.get(f"/datasets/{ds.pk}/runs/panel/").content.decode()
    assert "3 seeds" in panel and "one class (1 of 3)" in panel and "label-free pick seed 5" in panel
    rows = {r["method"]: r for r in owner_api.get(f"/api/datasets/{ds.pk}/methods/").json()}
    assert rows["random-icl"]["warnings"]["one_class"] == 1


@pytest.mark.parametrize(("seeds", "message"), [([1, 1], "once"), ([], "at least"), (list(range(21)), "no more"),
                                                (["a"], "integer"), ([2**40], "less than or equal")])
def test_bad_seeds_are_refused_and_nothing_is_queued(owner, owner_api, seeds, message):
    ds = fake_dataset(owner)
    resp = _post_run(owner_api, ds, config=ICM_FAST, seeds=seeds, baselines=True)
    assert resp.status_code == 400 and message in str(resp.json()["seeds"]), resp.content
    assert Run.objects.count() == 0


def test_a_run_whose_readout_or_anchor_lacks_a_field_is_refused(owner, owner_api):
    ds = fake_dataset(owner)  # fields: text only
    # The claims preset's likelihood reads the claim alone (its `choice`), as the split readout does.
    for params in ({"anchor": "likelihood"}, {"readout": "split"}):
        resp = _post_run(owner_api, ds, config=ICM_FAST | params, baselines=True)
        assert resp.status_code == 400, resp.content
        message = resp.json()["config"][0]
        assert "field 'choice'" in message and "'e0' (row 1)" in message
    resp = _post_run(owner_api, ds, method="likelihood")
    assert resp.status_code == 400 and "the likelihood anchor needs the field 'choice'" in resp.content.decode()
    # Present but empty counts as lacking it.
    rows = [r | {"choice": "" if i == 3 else r["text"]} for i, r in enumerate(fake_rows())]
    ds = create_dataset(owner=owner, filename="q.jsonl", data=jsonl(rows), task="claims", name="Q",
                        template=TEMPLATE, consistency="none")
    resp = _post_run(owner_api, ds, method="likelihood")
    assert resp.status_code == 400 and "'e3' (row 4)" in resp.content.decode(), resp.content
    assert not Run.objects.exists()


def test_an_anchored_icm_run_comes_with_its_anchors_own_labels(owner, owner_api, client):
    rows = [r | {"question": "Which item?", "choice": r["text"]} for r in fake_rows()]
    ds = create_dataset(owner=owner, filename="anchored.jsonl", data=jsonl(rows), task="claims", name="Anchored",
                        template=TEMPLATE, consistency="none")
    resp = _post_run(owner_api, ds, config=ICM_FAST | {"anchor": "likelihood"}, baselines=True)
    assert resp.status_code == 201, resp.content
    assert sorted(Run.objects.values_list("method", flat=True)) == [
        "gold-icl", "icm", "likelihood", "random-icl", "zero-shot"]
    for method in ("icm", "likelihood"):
        run = Run.objects.get(method=method)
        assert execute_run(run.pk) == "succeeded"
        run.refresh_from_db()
        # The fake backend "knows" each claim's marker: the anchor alone and ICM with it both follow gold.
        assert run.progress["gold_agreement"] >= 0.9, (method, run.progress)
    icm = Run.objects.get(method="icm")
    assert icm.label_set.configuration["config"]["anchor"] == "likelihood"
    assert icm.progress["flipped_batches"] in ([], [0])
    # Every example labeled: what the search chose and what the completion added, and what named the classes.
    p = icm.progress
    assert p["labeled"] == p["size"] == p["searched"] + p["completed"]
    (where,) = p["orientation"]
    assert where["signal"] == "likelihood+zero-shot" and where["decided"] and p["warnings"] == []
    client.force_login(owner)
    page = client.get(f"/runs/{icm.pk}/").content.decode()
    assert f"{p['searched']} from the search, {p['completed']} from the completion after it" in page
    assert "Classes named by" in page and "likelihood+zero-shot" in page and "decided" in page
    api = owner_api.get(f"/api/runs/{icm.pk}/").json()["progress"]
    assert api["searched"] == p["searched"] and api["orientation"][0]["signals"]["likelihood"]["r"] > 0


def test_cancel_a_queued_run(owner, owner_api):
    ds = fake_dataset(owner)
    run_id = _post_run(owner_api, ds, config=ICM_FAST).json()["id"]
    resp = owner_api.post(f"/api/runs/{run_id}/cancel/")
    assert resp.json()["status"] == "cancelled"
    assert execute_run(run_id).startswith("skipped")
    assert owner_api.post(f"/api/runs/{run_id}/cancel/").status_code == 400


def _run_in_thread(run_id: int) -> threading.Thread:
    def target():
        from django.db import connection

        try:
            execute_run(run_id)
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread


def test_cancel_keeps_partial_labels_and_resume_matches_an_uninterrupted_run(owner, owner_api, call_gate, settings):
    # Progress and checkpoints at every step: what the run has written is where it waits.
    settings.ICM_CHECKPOINT_S = settings.ICM_PROGRESS_S = 0.0
    ds = fake_dataset(owner, n=32)
    params = {"iterations": 120, "batch_size": 64, "num_seed": 4, "fix_steps": 2}
    reference = create_run(user=owner, dataset=ds, backend=FAKE, seed=7, config=params,
                           backend_options={"delay": 0.0})
    assert execute_run(reference.pk) == "succeeded"
    reference.refresh_from_db()

    run = create_run(user=owner, dataset=ds, backend=FAKE, seed=7, config=params,
                     backend_options={"delay": 0.0, **call_gate.options})
    thread = _run_in_thread(run.pk)
    # Mid-way and checkpointed, the run waits at the gate while the cancel is asked for.
    advance(call_gate, run.pk, lambda r: r.checkpoint is not None and (r.progress.get("step") or 0) > 10)
    assert owner_api.post(f"/api/runs/{run.pk}/cancel/").status_code == 200
    asked = timezone.now()
    # Its heartbeat reads the request on its next beat (a beat stamped after the request committed).
    wait_for(run.pk, {"running"}, timeout=10, predicate=lambda r: r.heartbeat > asked)
    cancelled, released = release_until(call_gate, run.pk, {"cancelled", "failed", "succeeded"})
    assert cancelled.status == "cancelled", cancelled.error
    assert released <= 4  # it stopped at its next iteration, not at the end of the search
    thread.join(10)
    assert cancelled.label_set is not None and cancelled.label_set.partial
    assert cancelled.checkpoint is not None
    assert cancelled.progress["eta_s"] is None and cancelled.progress["phase"] == "ended"  # stopped: no time left
    partial = labels_of(cancelled)
    assert 0 < len(partial) <= 32

    # Resume (without the gate): it continues from the checkpoint to the uninterrupted run's labels.
    Run.objects.filter(pk=run.pk).update(backend_options={"delay": 0.0})
    assert owner_api.post(f"/api/runs/{run.pk}/resume/").json()["status"] == "queued"
    assert execute_run(run.pk) == "succeeded"
    run.refresh_from_db()
    assert labels_of(run) == labels_of(reference)
    assert run.attempts == 2
    assert LabelSet.objects.filter(dataset=ds, name=f"icm run {run.pk}").count() == 2  # partial v1, final v2


def test_backend_failure_marks_failed_and_resumes(owner, owner_api, tmp_path):
    ds = fake_dataset(owner)
    flag = tmp_path / "outage"
    flag.write_text("down")
    run = create_run(user=owner, dataset=ds, backend=FAKE, config=ICM_FAST,
                     backend_options={"delay": 0.0, "fail_flag": str(flag)})
    assert execute_run(run.pk) == "failed"
    run.refresh_from_db()
    assert run.status == "failed" and "unreachable" in run.error and run.label_set is None
    flag.unlink()
    assert owner_api.post(f"/api/runs/{run.pk}/resume/").json()["status"] == "queued"
    assert execute_run(run.pk) == "succeeded"


# -- sharded runs ---------------------------------------------------------------------------------------------

SHARDED = {"iterations": 40, "batch_size": 8, "num_seed": 3, "fix_steps": 2}


def test_sharded_run_gives_the_labels_of_one_whole_run(owner, owner_api):
    ds = fake_dataset(owner, n=40)  # 5 batches of 8
    whole = create_run(user=owner, dataset=ds, backend=FAKE, seed=2, config=SHARDED,
                       backend_options={"delay": 0.0})
    assert execute_run(whole.pk) == "succeeded"
    whole.refresh_from_db()

    resp = _post_run(owner_api, ds, config=SHARDED, seed=2, shards=3)
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["status"] == "running" and len(body["shards"]) == 3
    assert [s["batch_range"] for s in body["shards"]] == [[0, 2], [2, 3], [3, 5]]
    parent_id, shard_ids = body["id"], [s["id"] for s in body["shards"]]
    assert execute_run(parent_id).startswith("skipped")  # the parent itself never executes
    # Shards finish in any order; the parent stays running and partial until the last one.
    for n, shard_id in enumerate(reversed(shard_ids)):
        assert execute_run(shard_id) == "succeeded"
        parent = Run.objects.get(pk=parent_id)
        if n < 2:
            assert parent.status == "running" and parent.label_set.partial
    assert parent.status == "succeeded" and parent.finished is not None and not parent.label_set.partial
    assert labels_of(parent) == labels_of(whole)
    scores = dict(parent.label_set.labels.values_list("example__external_id", "score"))
    assert scores == dict(whole.label_set.labels.values_list("example__external_id", "score"))
    snap = owner_api.get(f"/api/runs/{parent_id}/").json()
    assert snap["progress"]["labeled"] == 40 and snap["progress"]["size"] == 40
    assert snap["progress"]["gold_agreement"] == pytest.approx(whole.progress["gold_agreement"])
    assert snap["progress"]["step"] == snap["progress"]["total_steps"] == 5 * 40
    assert owner_api.get(f"/api/runs/{shard_ids[0]}/").json()["parent"] == parent_id
    # Only the parent's label set exists (shards write into it), and lists show the parent only.
    assert LabelSet.objects.filter(dataset=ds, kind="icm").count() == 2
    assert set(runs_of(ds).values_list("pk", flat=True)) == {whole.pk, parent_id}


def test_sharded_run_fails_with_its_shard_and_resumes(owner, owner_api, tmp_path):
    ds = fake_dataset(owner, n=32)
    flag = tmp_path / "outage"
    parent = create_run(user=owner, dataset=ds, backend=FAKE, seed=1, config=SHARDED, shards=2,
                        backend_options={"delay": 0.0, "fail_flag": str(flag)})
    first, second = parent.shards.order_by("pk")
    assert execute_run(first.pk) == "succeeded"
    flag.write_text("down")
    assert execute_run(second.pk) == "failed"
    parent.refresh_from_db()
    assert parent.status == "failed" and f"shard run {second.pk} failed" in parent.error
    assert parent.label_set.partial and parent.label_set.labels.count() == 16
    flag.unlink()
    resumed = owner_api.post(f"/api/runs/{parent.pk}/resume/").json()
    assert resumed["status"] == "running"
    assert {s["status"] for s in resumed["shards"]} == {"succeeded", "queued"}
    assert execute_run(second.pk) == "succeeded"
    parent.refresh_from_db()
    assert parent.status == "succeeded" and parent.error == "" and not parent.label_set.partial
    assert parent.label_set.labels.count() == 32


def test_cancel_a_sharded_run_cancels_its_shards(owner, owner_api):
    ds = fake_dataset(owner, n=32)
    parent_id = _post_run(owner_api, ds, config=SHARDED, shards=4).json()["id"]
    resp = owner_api.post(f"/api/runs/{parent_id}/cancel/").json()
    assert resp["status"] == "cancelled"
    assert {s["status"] for s in resp["shards"]} == {"cancelled"}
    assert all(execute_run(s["id"]).startswith("skipped") for s in resp["shards"])


def test_the_sharded_run_page_lists_its_shards(client, owner):
    ds = fake_dataset(owner, n=16)
    client.force_login(owner)
    assert 'name="shards"' in client.get(f"/datasets/{ds.pk}/runs/new/").content.decode()
    create_run(user=owner, dataset=ds, backend=FAKE, config=SHARDED, shards=2,
               backend_options={"delay": 0.0})
    parent = Run.objects.get(shard_count=2)
    first, second = parent.shards.order_by("pk")
    execute_run(first.pk)
    html = client.get(f"/runs/{parent.pk}/").content.decode()
    assert "Shards" in html and f'href="/runs/{first.pk}/"' in html and f'href="/runs/{second.pk}/"' in html
    assert "running" in html and "succeeded" in html and "queued" in html
    shard_html = client.get(f"/runs/{first.pk}/").content.decode()
    assert f"Shard of <a href=\"/runs/{parent.pk}/\">run {parent.pk}</a>" in shard_html
    panel = client.get(f"/datasets/{ds.pk}/runs/").content.decode()
    assert f"/runs/{parent.pk}/" in panel and f"/runs/{second.pk}/" not in panel  # lists show parents only


def test_shards_are_for_icm_only_and_capped_by_the_batches(owner, owner_api):
    ds = fake_dataset(owner, n=16)
    resp = _post_run(owner_api, ds, method="zero-shot", shards=2)
    assert resp.status_code == 400 and "shards" in resp.json()
    body = _post_run(owner_api, ds, config=SHARDED, shards=9).json()
    assert [s["batch_range"] for s in body["shards"]] == [[0, 1], [1, 2]]  # 2 batches: 2 shards


def test_stale_run_is_taken_over_and_the_old_lease_writes_nothing(owner):
    from webapp.runs.execution import claim

    ds = fake_dataset(owner)
    run = create_run(user=owner, dataset=ds, backend=FAKE, config=ICM_FAST)
    first = claim(run.pk)
    assert first and claim(run.pk) is None  # owned and alive: nobody else may take it
    Run.objects.filter(pk=run.pk).update(heartbeat=Run.objects.get(pk=run.pk).heartbeat.replace(year=2000))
    second = claim(run.pk)
    assert second and second != first
    assert Run.objects.filter(pk=run.pk, lease=first).update(progress={"x": 1}) == 0


# -- embedded worker and the websocket -----------------------------------------------------------------------

def _in_thread(fn, *args, **kwargs):
    # The test client keeps its connection open; in a helper thread, close it so teardown can drop the db.
    from django.db import connection

    try:
        return fn(*args, **kwargs)
    finally:
        connection.close()


def _app():
    from webapp.asgi import application

    return application


async def _receive_json(comm, timeout=5.0):
    return json.loads(await comm.receive_from(timeout=timeout))


def test_embedded_run_streams_progress_over_the_websocket(owner, owner_api, settings):
    settings.ICM_RUN_DISPATCH = "embedded"
    ds = fake_dataset(owner, n=32)
    token = Token.objects.get_or_create(user=owner)[0].key
    hp = {"iterations": 60, "batch_size": 64, "num_seed": 4, "fix_steps": 2}

    async def scenario():
        resp = await asyncio.to_thread(_in_thread, _post_run, owner_api, ds, config=hp)
        run_id = resp.json()["id"]
        comm = WebsocketCommunicator(_app(), f"/ws/runs/{run_id}/?format=json",
                                     headers=[(b"authorization", f"Token {token}".encode())])
        connected, _ = await comm.connect()
        assert connected
        first = await _receive_json(comm)
        assert first["id"] == run_id and first["status"] in ("queued", "running")
        seen, statuses, stamps = [first], {first["status"]}, []
        while seen[-1]["status"] not in ("succeeded", "failed"):
            msg = await _receive_json(comm, timeout=10)
            seen.append(msg)
            statuses.add(msg["status"])
            stamps.append(time.monotonic())
        await comm.disconnect()
        # Snapshot on reconnect: the finished state, straight from the database.
        again = WebsocketCommunicator(_app(), f"/ws/runs/{run_id}/?format=json&token={token}")
        connected, _ = await again.connect()
        assert connected
        final = await _receive_json(again)
        await again.disconnect()
        return seen, statuses, stamps, final

    seen, statuses, stamps, final = async_to_sync(scenario)()
    embedded.wait_idle()
    assert seen[-1]["status"] == "succeeded", seen[-1]["error"]
    assert "running" in statuses
    running = [m for m in seen if m["status"] == "running" and m["progress"].get("step")]
    assert len(running) >= 3
    steps = [m["progress"]["step"] for m in running]
    assert steps == sorted(steps)
    # Throttled: never two messages of one phase closer than the configured interval (allowing scheduler
    # jitter); a new phase (a batch's end) goes out at once.
    phases = [(m["status"], m["progress"].get("phase")) for m in seen[1:]]  # stamps are of seen[1:]
    gaps = [b - a for (a, b), (p, q) in zip(itertools.pairwise(stamps), itertools.pairwise(phases), strict=True)
            if p == q]
    assert gaps and min(gaps) >= settings.ICM_WS_MIN_INTERVAL_S * 0.5
    assert final["status"] == "succeeded" and final["label_set"] is not None
    assert final["progress"]["labeled"] == Run.objects.get(pk=final["id"]).label_set.labels.count() > 16


def test_websocket_refuses_the_wrong_user(owner, stranger, client):
    ds = fake_dataset(owner)
    run = create_run(user=owner, dataset=ds, backend=FAKE, config=ICM_FAST)
    stranger_token = Token.objects.get_or_create(user=stranger)[0].key
    owner_token = Token.objects.get_or_create(user=owner)[0].key
    client.force_login(owner)
    session = client.cookies["sessionid"].value

    async def attempt(path, headers):
        comm = WebsocketCommunicator(_app(), path, headers=headers)
        connected, _ = await comm.connect()
        if connected:
            await comm.receive_from(timeout=5)
        await comm.disconnect()
        return connected

    url = f"/ws/runs/{run.pk}/"
    cookie = (b"cookie", f"sessionid={session}".encode())
    assert not async_to_sync(attempt)(url, [])  # anonymous
    assert not async_to_sync(attempt)(url, [(b"authorization", f"Token {stranger_token}".encode())])
    assert not async_to_sync(attempt)(f"{url}?token={stranger_token}", [])
    assert not async_to_sync(attempt)(f"{url}?token=bogus", [])
    assert not async_to_sync(attempt)(f"/ws/runs/{run.pk + 999}/?token={owner_token}", [])
    # The session cookie counts only from this site's pages (cross-site websocket hijacking).
    assert not async_to_sync(attempt)(url, [cookie, (b"origin", b"http://evil.example")])
    assert not async_to_sync(attempt)(url, [cookie])
    assert async_to_sync(attempt)(url, [cookie, (b"origin", b"http://localhost:8000")])
    assert async_to_sync(attempt)(f"{url}?token={owner_token}", [])


def test_websocket_applies_pushed_progress_and_still_checks_access(owner, viewer):
    # A progress hint carries the columns the worker wrote: the page gets them without a database read.
    # Access is still read from the database every second: a removed member is disconnected.
    from channels.layers import get_channel_layer

    from webapp.runs.live import group_name

    ds = fake_dataset(owner)
    Membership.objects.create(dataset=ds, user=viewer, role=Role.VIEWER)
    run = create_run(user=owner, dataset=ds, backend=FAKE, config=ICM_FAST)  # stays queued
    token = Token.objects.get_or_create(user=viewer)[0].key
    progress = {"step": 7, "total_steps": 9, "labeled": 5, "updated": "2026-11-27T00:00:00+00:00"}

    async def scenario():
        comm = WebsocketCommunicator(_app(), f"/ws/runs/{run.pk}/?format=json&token={token}")
        connected, _ = await comm.connect()
        assert connected
        first = await _receive_json(comm)
        await get_channel_layer().group_send(group_name(run.pk), {
            "type": "run.changed", "fields": {"progress": progress, "history": [[7, -1.5, None]]}})
        pushed = await _receive_json(comm)
        await asyncio.to_thread(_in_thread, lambda: Membership.objects.filter(user=viewer).delete())
        closed = await comm.receive_output(timeout=5)
        await comm.disconnect()
        return first, pushed, closed

    first, pushed, closed = async_to_sync(scenario)()
    assert first["progress"] == RunProgress().as_dict() and first["status"] == "queued"  # nothing known yet
    assert pushed["progress"] == progress and pushed["history"] == [[7, -1.5, None]]
    assert pushed["status"] == "queued" and pushed["id"] == run.pk
    assert Run.objects.get(pk=run.pk).progress == {}  # it came with the hint, not from the row
    assert closed == {"type": "websocket.close", "code": 4404}


def test_a_batch_end_is_pushed_at_once_other_progress_waits_for_the_throttle(owner, settings, monkeypatch):
    # The worker writes a batch's final progress right behind its last iteration's: the page shows the
    # batch end at once; a second iteration snapshot inside the throttle's interval still waits. The
    # consumer's clock is the test's: time moves only when the test moves it.
    from channels.layers import get_channel_layer

    from tests.fakes import ManualClock
    from webapp.runs.consumers import RunConsumer
    from webapp.runs.live import group_name

    clock = ManualClock()
    monkeypatch.setattr(RunConsumer, "clock", clock)
    settings.ICM_WS_MIN_INTERVAL_S = 3.0
    ds = fake_dataset(owner)
    run = create_run(user=owner, dataset=ds, backend=FAKE, config=ICM_FAST)  # stays queued
    token = Token.objects.get_or_create(user=owner)[0].key

    async def write(phase: str, step: int) -> None:  # as the worker does: the row, then the hint with it
        progress = {"phase": phase, "step": step, "updated": f"2026-11-27T00:00:0{step}+00:00"}
        await asyncio.to_thread(_in_thread, lambda: Run.objects.filter(pk=run.pk).update(progress=progress))
        await get_channel_layer().group_send(group_name(run.pk), {"type": "run.changed",
                                                                   "fields": {"progress": progress}})

    async def scenario():
        comm = WebsocketCommunicator(_app(), f"/ws/runs/{run.pk}/?format=json&token={token}")
        connected, _ = await comm.connect()
        assert connected
        await _receive_json(comm)  # the snapshot on connect
        clock.advance(settings.ICM_WS_MIN_INTERVAL_S)  # the throttle's interval since that one
        await write("iteration", 1)
        first = await _receive_json(comm, timeout=5)
        await write("batch_done", 2)
        batch_end = await _receive_json(comm, timeout=5)  # inside the interval (the clock stands), yet sent
        await write("batch_done", 3)  # the same phase again: throttled while the clock stands
        assert await comm.receive_nothing(timeout=1.5)  # the poll came by at least once meanwhile
        clock.advance(settings.ICM_WS_MIN_INTERVAL_S)
        later = await _receive_json(comm, timeout=5)
        await comm.disconnect()
        return first, batch_end, later

    first, batch_end, later = async_to_sync(scenario)()
    assert first["progress"]["step"] == 1 and batch_end["progress"]["phase"] == "batch_done"
    assert batch_end["progress"]["step"] == 2 and later["progress"]["step"] == 3


def test_websocket_html_fragment_for_htmx(owner):
    ds = fake_dataset(owner)
    run = create_run(user=owner, dataset=ds, backend=FAKE, config=ICM_FAST)
    execute_run(run.pk)
    token = Token.objects.get_or_create(user=owner)[0].key

    async def scenario():
        comm = WebsocketCommunicator(_app(), f"/ws/runs/{run.pk}/?token={token}")
        await comm.connect()
        html = await comm.receive_from(timeout=5)
        await comm.disconnect()
        return html

    html = async_to_sync(scenario)()
    assert html.lstrip().startswith('<div id="run-live"')  # swapped in by id (htmx ws extension)
    assert "succeeded" in html and "<polyline" in html
    assert ">iteration</text>" in html and ">U</text>" in html  # the plot has its axes
    # No longer queued: the pushed fragment also removes the page's "is queued" flash (an out-of-band delete).
    assert '<div id="flash-run-queued" hx-swap-oob="delete"></div>' in html


def test_the_plot_of_a_run_has_its_axes_ticks():
    from webapp.runs.templatetags.run_plot import run_plot

    plot = run_plot([[0, -2.0, 0.5], [10, -1.5, 0.75], [20, 0.0, None]])
    assert (plot["step_min"], plot["step_mid"], plot["step_max"]) == (0, 10, 20)
    assert (plot["u_min"], plot["u_mid"], plot["u_max"]) == ("-2.00", "-1.00", "0.00")
    # x spans 0 … 640 and y 160 … 0 (SVG's y grows downwards); gold agreement on its own 0 … 1 scale.
    assert plot["score"] == "0.0,160.0 320.0,120.0 640.0,0.0" and plot["agreement"] == "0.0,80.0 320.0,40.0"


def test_embedded_startup_resumes_orphaned_runs(owner, settings):
    from webapp.runs.dispatch import recover_runs

    ds = fake_dataset(owner)
    run = create_run(user=owner, dataset=ds, backend=FAKE, config=ICM_FAST)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease="dead-process")
    assert recover_runs(startup=True) == [run.pk]  # dispatch "none": re-queued, not executed
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    assert execute_run(run.pk) == "succeeded"


def test_a_finished_runs_phase_says_it_ended_and_its_status_how(owner):
    """The progress record's phase is what the execution was doing, never the run's status."""
    from webapp.runs.progress import ENDED, RunProgress

    ds = fake_dataset(owner)
    run = create_run(user=owner, dataset=ds, backend=FAKE, config=ICM_FAST)
    execute_run(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.progress["phase"] == ENDED
    final = RunProgress.from_dict(run.progress)
    assert final.labeled == final.size == 24 and final.searched + final.completed == 24
    assert final.model_calls and final.computed_tokens  # the backend's counters, all four
    assert set(run.progress) == set(RunProgress().as_dict())  # one typed record, every field stored


# -- pages ------------------------------------------------------------------------------------------------------

def test_run_pages(client, owner):
    ds = fake_dataset(owner)
    client.force_login(owner)
    resp = client.post(f"/datasets/{ds.pk}/runs/new/", {
        "method": "icm", "backend": "transformers", "model": "nope", "seeds": "0", "readout": "verdict",
        "context": "all", "iterations": 5, "batch_size": 8, "num_seed": 2, "alpha": 50, "initial_temperature": 10,
        "final_temperature": 0.01, "cooling": 0.99, "fix_steps": 1, "boost": 100, "mode": "fast",
        "init": "random", "rounds": 3})
    assert resp.status_code == 400 and "does not offer that model" in resp.content.decode()
    assert "nope" not in resp.content.decode().split("<form")[0]
    resp = client.post(f"/datasets/{ds.pk}/runs/new/", {
        "method": "icm", "backend": "transformers", "seeds": "0", "readout": "verdict", "context": "all",
        "iterations": 5, "batch_size": 8, "num_seed": 2, "alpha": 50, "initial_temperature": 10,
        "final_temperature": 0.01, "cooling": 0.99, "fix_steps": 1, "boost": 100, "mode": "fast",
        "init": "random", "anchor": "likelihood", "baselines": ["zero-shot", "random-icl", "gold-icl"], "rounds": 3})
    assert resp.status_code == 400 and "the likelihood anchor needs the field &#x27;choice&#x27;" in \
        resp.content.decode()
    assert Run.objects.count() == 0
    resp = client.post(f"/datasets/{ds.pk}/runs/new/", {
        "method": "icm", "backend": "transformers", "seeds": "0", "readout": "verdict", "context": "all",
        "iterations": 5, "batch_size": 8, "num_seed": 2, "alpha": 50, "initial_temperature": 10,
        "final_temperature": 0.01, "cooling": 0.99, "fix_steps": 1, "boost": 100, "mode": "fast",
        "init": "random", "rounds": 3}, follow=True)
    queued = Run.objects.get()
    html = resp.content.decode()
    # The flash carries the id by which the live fragment removes it once the run leaves the queue.
    assert f'id="flash-run-queued">Run {queued.pk} is queued.</li>' in html
    assert 'hx-swap-oob="delete"' not in html  # the page's own fragment retracts nothing
    queued.delete()
    run = create_run(user=owner, dataset=ds, backend=FAKE, config=ICM_FAST)
    execute_run(run.pk)
    html = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'ws-connect="/ws/runs/' in html and "succeeded" in html
    panel = client.get(f"/datasets/{ds.pk}/runs/panel/").content.decode()
    assert "Golden-label ICL" in panel and f"run {run.pk}" in panel
    assert client.get(f"/datasets/{ds.pk}/runs/").status_code == 200
    assert client.get(f"/datasets/{ds.pk}/runs/new/").status_code == 200


def test_run_pages_hidden_from_strangers(client, owner, stranger):
    ds = fake_dataset(owner)
    run = create_run(user=owner, dataset=ds, backend=FAKE, config=ICM_FAST)
    client.force_login(stranger)
    for method, url in (("get", f"/runs/{run.pk}/"), ("post", f"/runs/{run.pk}/cancel/"),
                        ("post", f"/runs/{run.pk}/resume/"), ("get", f"/datasets/{ds.pk}/runs/"),
                        ("get", f"/datasets/{ds.pk}/runs/new/"), ("get", f"/datasets/{ds.pk}/runs/panel/")):
        assert getattr(client, method)(url).status_code == 404, url



def _form(**changes) -> dict:
    fields = {"method": "icm", "backend": "transformers", "seeds": "0", "readout": "verdict", "context": "all",
              "calibrate": "on", "num_seed": 2, "alpha": 50, "initial_temperature": 10, "final_temperature": 0.01,
              "cooling": 0.99, "fix_steps": 1, "boost": 100, "mode": "fast", "init": "random", "rounds": 3}
    return {k: v for k, v in (fields | changes).items() if v is not None}


def test_the_run_form_prices_a_start_at_the_pace_of_finished_runs(client, owner):
    from datetime import timedelta

    from django.utils import timezone

    ds = fake_dataset(owner)
    client.force_login(owner)
    page = client.get(f"/datasets/{ds.pk}/runs/new/").content.decode()
    assert 'id="run-estimate"' in page and f"/datasets/{ds.pk}/runs/estimate/" in page
    # Custom prompts: the form starts from the paper's readout, calibrated, and says why.
    assert "prompts are its own" in page and re.search(r'name="calibrate"[^>]*checked', page)
    url = f"/datasets/{ds.pk}/runs/estimate/"
    html = client.get(url, _form(iterations=10, batch_size=24)).content.decode()
    assert "not measured yet on this server" in html and "estimate-warning" not in html
    # One finished ICM run of 24 examples, 10 iterations over one batch: 100 s, 5,000 tokens, 50 calls.
    now = timezone.now()
    Run.objects.create(dataset=ds, created_by=owner, method="icm", task="claims", backend="transformers",
                       config={"readout": "verdict", "batch_size": 24, "iterations": 10}, status=RunStatus.SUCCEEDED,
                       progress={"size": 24, "computed_tokens": 5000, "model_calls": 50},
                       started=now - timedelta(seconds=100), finished=now)
    html = client.get(url, _form(iterations=10, batch_size=24, seeds="0, 1")).content.decode()
    assert html.count("2 min") >= 2 and "5,000" in html and "10,000" in html and "3 min" in html
    assert "estimate-warning" not in html and "cannot be priced" not in html
    # Forty times the iterations, and the baselines (never measured here) beside them: over an hour.
    html = client.get(url, _form(iterations=400, batch_size=24, seeds="0, 1",
                                 baselines=["zero-shot", "random-icl", "gold-icl"])).content.decode()
    assert "estimate-warning" in html and "over an hour" in html and "2.2 h" in html
    assert "cannot be priced" in html and "Zero-shot" in html
    # Another readout has no measured pace; a form that does not validate gets no estimate and no error.
    assert "not measured yet" in client.get(url, _form(iterations=10, batch_size=24, readout="split")).content.decode()
    resp = client.get(url, _form(alpha=-1))
    assert resp.status_code == 200 and "alpha must be positive" in resp.content.decode()
    resp = client.get(url, _form(iterations=10, batch_size=1))
    assert resp.status_code == 200 and "Complete the form" in resp.content.decode()


def test_golden_icl_runs_per_seed_only_where_shots_sample_its_demonstrations(owner, owner_api):
    ds = fake_dataset(owner)
    assert _post_run(owner_api, ds, method="gold-icl", seeds=[0, 1, 2]).status_code == 201
    assert sorted(Run.objects.filter(method="gold-icl").values_list("seed", flat=True)) == [0]
    assert _post_run(owner_api, ds, method="gold-icl", seeds=[0, 1, 2], config={"shots": 4}).status_code == 201
    assert sorted(Run.objects.filter(method="gold-icl").values_list("seed", flat=True)) == [0, 0, 1, 2]


def test_the_method_table_never_puts_one_experiments_method_beside_anothers(owner, owner_api, client):
    """Baselines on 16 examples, then ICM on 24: the table is the 24-example experiment, and says so."""
    ds = fake_dataset(owner, n=32)
    assert _post_run(owner_api, ds, method="zero-shot", limit=16).status_code == 201
    assert _post_run(owner_api, ds, config=ICM_FAST, limit=24).status_code == 201
    for run in Run.objects.order_by("pk"):
        assert execute_run(run.pk) == "succeeded"
    rows = {r["method"]: r for r in owner_api.get(f"/api/datasets/{ds.pk}/methods/").json()}
    assert rows["icm"]["n_seeds"] == 1 and rows["icm"]["limit"] == 24 and rows["icm"]["n_examples"] == 24
    assert rows["zero-shot"]["n_seeds"] == 0  # its experiment was on other examples
    client.force_login(owner)
    panel = client.get(f"/datasets/{ds.pk}/runs/panel/").content.decode()
    # Two experiments, each its own table, the latest first: ICM on 24, zero-shot on 16.
    titles = re.findall(r'<h3 class="experiment-title">(.*?)</h3>', panel)
    assert [t.split(" · ")[0] for t in titles] == ["Latest experiment: 24 examples (limit 24)",
                                                   "An earlier experiment: 16 examples (limit 16)"]
    tables = re.split(r'<table class="grid method-table"', panel)[1:]
    with_seeds = [re.findall(r'data-method="([a-z-]+)"><td>[^<]*</td>\s*<td class="num">(\d+)', t) for t in tables]
    assert with_seeds == [[("icm", "24")], [("zero-shot", "16")]]


def test_a_start_runs_the_baselines_chosen_bootstrap_included_each_priced(owner, owner_api, client):
    ds = fake_dataset(owner)
    resp = _post_run(owner_api, ds, config=ICM_FAST, seeds=[0, 1], baseline_methods=["zero-shot", "bootstrap"])
    assert resp.status_code == 201, resp.content
    assert sorted(Run.objects.values_list("method", flat=True)) == ["bootstrap", "icm", "icm", "zero-shot"]
    refused = _post_run(owner_api, ds, config=ICM_FAST, baseline_methods=["likelihood"])  # no likelihood fields
    assert refused.status_code == 400 and "baselines" in refused.json()
    client.force_login(owner)
    form = client.get(f"/datasets/{ds.pk}/runs/new/").content.decode()
    boxes = {m.group(1): "checked" in m.group(0)
             for m in re.finditer(r'<input type="checkbox" name="baselines" value="([a-z-]+)"[^>]*>', form)}
    # Only what this dataset can run (no likelihood fields here), the default ones ticked.
    assert boxes == {"zero-shot": True, "random-icl": True, "bootstrap": False, "gold-icl": True}
    html = client.get(f"/datasets/{ds.pk}/runs/estimate/", _form(
        iterations=40, batch_size=8, seeds="0", baselines=["zero-shot", "bootstrap"])).content.decode()
    assert "Bootstrap" in html and "Zero-shot" in html and "Golden" not in html


def test_a_runs_page_its_api_and_its_label_set_give_one_accuracy(owner, owner_api, client):
    """One function computes a label set's metrics: after the run, a new gold version (adjudication) changes
    the label set's accuracy, and the run's page and `/api/runs/{id}/` say the same, naming that gold."""
    from webapp.datasets.selectors import gold_comparisons, latest_gold

    ds = fake_dataset(owner, n=24)
    assert _post_run(owner_api, ds, config=ICM_FAST).status_code == 201
    run = Run.objects.get()
    assert execute_run(run.pk) == "succeeded"
    run.refresh_from_db()
    gold = latest_gold(ds)
    # A second gold version that disagrees with the first on a third of the examples.
    flipped = [{"id": lab.example.external_id, "label": lab.value if i % 3 else not lab.value}
               for i, lab in enumerate(gold.labels.select_related("example").order_by("example__position"))]
    upload = SimpleUploadedFile("gold2.jsonl", jsonl(flipped))
    resp = owner_api.post(f"/api/datasets/{ds.pk}/labelsets/", {"file": upload, "kind": "gold",
                                                                 "name": gold.name}, format="multipart")
    assert resp.status_code == 201, resp.content
    gold2 = latest_gold(ds)
    assert gold2.version == gold.version + 1
    expected = gold_comparisons([run.label_set], gold2)[run.label_set_id]
    assert expected["accuracy"] != (run.progress.get("gold") or {}).get("accuracy")  # the live figure is stale
    api = owner_api.get(f"/api/runs/{run.pk}/").json()["progress"]
    assert api["gold"] == json.loads(json.dumps(expected))
    assert api["gold_version"] == {"id": gold2.pk, "name": gold2.name, "version": gold2.version}
    listed = owner_api.get(f"/api/runs/?dataset={ds.pk}").json()["results"]  # the list computes it per page
    assert [r["progress"]["gold"] for r in listed] == [api["gold"]]
    client.force_login(owner)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert f"Accuracy against {gold2.name} v{gold2.version}" in page
    assert f'{expected["accuracy"]:.3f}</span> on {expected["n"]}' in page
    label_set_page = client.get(f"/labelsets/{run.label_set_id}/").content.decode()
    assert f'{expected["correct"]} of {expected["n"]}' in label_set_page


def test_a_range_of_durations_reads_as_one_figure_where_its_ends_are_the_same():
    from webapp.runs.templatetags.run_progress import duration_range

    assert duration_range(4978080.0, 4978090.0) == "1382.8 h"  # was "1382.8 h–1382.8 h"
    assert duration_range(720.0, 1200.0) == "12–20 min"
    assert duration_range(40.0, 600.0) == "40 s–10 min"
    assert duration_range(None, None) == "–"


def test_the_dashboard_says_which_examples_a_runs_label_set_covers(owner, owner_api, client):
    """Like with like on the agreement dashboard too: a run's label set shows its limit beside n."""
    ds = fake_dataset(owner, n=32)
    assert _post_run(owner_api, ds, method="zero-shot", limit=16).status_code == 201
    run = Run.objects.get()
    assert execute_run(run.pk) == "succeeded"
    run.refresh_from_db()
    gold = ds.label_sets.get(kind="gold")
    client.force_login(owner)
    page = client.get(f"/datasets/{ds.pk}/agreement/?gold={gold.pk}&labelsets={run.label_set_id}").content.decode()
    row = re.search(r'<table class="grid" id="accuracy-table">.*?<tbody><tr><td>[^<]*</td>'
                    r'<td class="num">([^<]*)</td><td class="num">([^<]*)</td>', page, re.S)
    assert row is not None and row.groups() == ("16", "16")


def test_a_claims_preset_run_takes_the_likelihood_anchor_unless_told_otherwise(owner, owner_api):
    """The claims preset's choice (docs/defaults.md) fills the anchor a start leaves out, for ICM only; a given
    one wins; the run's progress names the anchor the search used."""
    from .test_review import ROWS

    ds = create_dataset(owner=owner, filename="claims.jsonl", data=jsonl(ROWS), task="claims",
                        consistency="key:answer")
    resp = _post_run(owner_api, ds, config=ICM_FAST, baseline_methods=["zero-shot"])
    assert resp.status_code == 201, resp.content
    icm, zero_shot = Run.objects.get(method="icm"), Run.objects.get(method="zero-shot")
    assert icm.config["anchor"] == "likelihood" and "anchor" not in zero_shot.config
    assert execute_run(icm.pk) == "succeeded"
    icm.refresh_from_db()
    assert icm.progress["anchor"] == "likelihood"
    given = _post_run(owner_api, ds, config={**ICM_FAST, "anchor": "none"})
    assert given.status_code == 201 and Run.objects.get(pk=given.json()["id"]).config["anchor"] == "none"

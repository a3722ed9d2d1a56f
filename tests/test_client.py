"""The Python client (icm_client) against the embedded server as a user starts it (uvicorn, SQLite, runs in the
server's worker thread), and its DataFrames and errors alone. The worked example, docs/client.md, runs whole on
the packaged model (marked `model`); the other server tests start runs on the test backend tests.fakes
registers, which the server loads because this test names it in ICM_BACKEND_PLUGINS."""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from icm_client import (
    AgreementReport,
    APIError,
    Client,
    ICMClientError,
    LabelSet,
    RunFailed,
    WaitTimeout,
    label_sets_frame,
    labels_frame,
    runs_frame,
)

from .tools.embedded_server import embedded_server

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "client.md"
FAKE = "slow-fake"
# The fake backend reads "pos" and "neg" in an example's text as what the model "knows".
FAKE_TEMPLATE = "Item: {text}\nLabel:"
FAKE_ROWS = [{"id": f"e{i}", "text": f"item {i} " + ("pos" if i % 2 else "neg"), "label": bool(i % 2),
              "consistency_id": str(i // 2)} for i in range(12)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with embedded_server(tmp_path_factory.mktemp("server"), ICM_BACKEND_PLUGINS="tests.fakes") as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with Client.login(server.url, server.username, server.password) as signed_in:
        yield signed_in


def _fake_dataset(client: Client, name: str):
    return client.upload(pd.DataFrame(FAKE_ROWS), task="claims", name=name, template=FAKE_TEMPLATE,
                         consistency="none")


# -- the worked example ---------------------------------------------------------------------------------------------


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, re.S | re.M)


@pytest.mark.model
def test_the_worked_example_in_docs_client_md_runs_against_the_embedded_server(server, monkeypatch, capsys):
    # Every Python block of the page, in order, in one namespace, as a notebook runs them: on the packaged
    # model, with the address and token the page reads from the environment.
    token = Client.login(server.url, server.username, server.password).token
    monkeypatch.setenv("ICM_URL", server.url)
    monkeypatch.setenv("ICM_TOKEN", token)
    monkeypatch.chdir(ROOT)
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 8
    namespace: dict = {}
    for n, block in enumerate(blocks, start=1):
        try:
            exec(compile(block, f"docs/client.md (python block {n})", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"block {n} of docs/client.md failed:\n{block}\nserver log:\n"
                                 f"{server.log_tail()}") from exc
    runs = namespace["runs"]
    assert [(r.seed, r.status, r.backend) for r in runs] == [(0, "succeeded", "transformers"),
                                                             (1, "succeeded", "transformers"),
                                                             (2, "succeeded", "transformers")]
    assert all(r.gold["n"] == 16 and 0 <= r.gold["accuracy"] <= 1 for r in runs)
    labels = namespace["labels"]
    assert len(labels) == 16 and {"gold v1", *namespace["seed_columns"]} <= set(labels.columns)
    assert all(str(labels[c].dtype) == "boolean" for c in namespace["seed_columns"])
    accuracy = namespace["accuracy"]
    assert set(namespace["seed_columns"]) <= set(accuracy["name"]) and (accuracy["n"] == 16).all()
    assert [(p.row, p.field) for p in namespace["problems"]] == [(3, "id")]
    assert "config" in namespace["refused"]
    out = capsys.readouterr()
    assert "duplicate id 'a'" in out.out


# -- the client against the server, without a model ------------------------------------------------------------------


def test_a_dataframe_a_pyarrow_table_a_file_and_a_datasets_folder_upload_as_the_same_examples(client, tmp_path):
    import datasets

    frame = pd.DataFrame(FAKE_ROWS)
    path = tmp_path / "fake.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in FAKE_ROWS))
    folder = tmp_path / "fake_folder"
    datasets.Dataset.from_pandas(frame).save_to_disk(str(folder))
    uploaded = [
        client.upload(frame, task="claims", name="From a DataFrame", template=FAKE_TEMPLATE),
        client.upload(pa.Table.from_pandas(frame), task="claims", name="From Arrow", template=FAKE_TEMPLATE),
        client.upload(path, task="claims", template=FAKE_TEMPLATE),
        client.upload(folder, task="claims", name="From a folder", template=FAKE_TEMPLATE),
    ]
    assert [d.source_name for d in uploaded] == ["From_a_DataFrame.parquet", "From_Arrow.parquet", "fake.jsonl",
                                                 "fake_folder.zip"]
    assert all(d.example_count == 12 and d.field_names == ["id", "text", "consistency_id"] for d in uploaded)
    assert uploaded[1].name == "From Arrow" and client.dataset(uploaded[1].id) == uploaded[1]
    examples = [client._pages(f"/api/datasets/{d.id}/examples/") for d in uploaded]
    assert all([(e["external_id"], e["fields"]) for e in ex] == [(e["external_id"], e["fields"]) for e in examples[0]]
               for ex in examples)
    # A filtered frame's row numbers are not data: no __index_level_0__ field.
    filtered = client.upload(frame[frame.label], task="claims", name="Filtered", template=FAKE_TEMPLATE)
    assert filtered.example_count == 6 and filtered.field_names == ["id", "text", "consistency_id"]


def test_a_rejected_file_raises_every_problem_with_its_row_and_field_and_stores_nothing(client):
    before = len(client.datasets())
    rows = [dict(r) for r in FAKE_ROWS[:4]]
    rows[2]["id"] = "e0"  # a duplicate id
    rows[3]["label"] = "maybe"
    with pytest.raises(APIError) as caught:
        client.upload(pd.DataFrame(rows).astype({"label": str}), task="claims", name="bad", template=FAKE_TEMPLATE)
    err = caught.value
    assert err.status == 400
    assert [(p.file, p.row, p.field) for p in err.problems] == [("bad.parquet", 3, "id"), ("bad.parquet", 4, "label")]
    assert err.message.startswith("bad.parquet: row 3, field 'id': duplicate id 'e0' (first at row 1)")
    # Every problem is in the error's text, not only the first the API's detail names.
    assert "bad.parquet: row 4, field 'label': label 'maybe' is not one of" in str(err)
    assert len(client.datasets()) == before


def test_refused_fields_and_missing_things_carry_the_apis_messages(client):
    with pytest.raises(APIError) as caught:
        client.upload(pd.DataFrame(FAKE_ROWS), task="no-such-task")
    assert caught.value.status == 400 and caught.value.fields == {"task": ['"no-such-task" is not a valid choice.']}
    assert str(caught.value) == 'HTTP 400: task: "no-such-task" is not a valid choice.'

    dataset = _fake_dataset(client, "Refusals")
    with pytest.raises(APIError) as caught:
        client.start_runs(dataset, seeds=[0], backend=FAKE, settings={"iterations": 4, "bogus": 1})
    assert caught.value.fields == {"config": ["unknown settings for ICM: bogus"]}
    assert client.runs(dataset) == []  # nothing queued
    with pytest.raises(APIError) as caught:
        client.start_runs(dataset, seeds=[0], backend="no-such-backend")
    assert caught.value.fields["backend"][0].startswith("this server does not offer that backend")
    with pytest.raises(APIError) as caught:
        client.run(10**9)
    assert (caught.value.status, caught.value.message) == (404, "No such run.")
    with pytest.raises(ValueError, match="has no label set yet"):
        client.labels([client.start_runs(dataset, seeds=[0], backend=FAKE, settings={"iterations": 2})[0]])
    client.wait(client.runs(dataset), progress=False)


def test_a_wrong_token_a_wrong_password_and_no_server_are_refused_with_their_reasons(server):
    with pytest.raises(APIError) as caught, Client(server.url, token="not-a-token") as stranger:
        stranger.datasets()
    assert (caught.value.status, caught.value.message) == (401, "Invalid token.")
    with pytest.raises(APIError) as caught:
        Client.login(server.url, server.username, "wrong password")
    assert caught.value.status == 400
    assert caught.value.message == "Unable to log in with the given credentials."
    with pytest.raises(ValueError, match="give a token"):
        Client(server.url)
    with pytest.raises(ICMClientError, match=r"cannot reach http://127\.0\.0\.1:9"), \
            Client("http://127.0.0.1:9/", token="x", timeout=5) as nowhere:
        nowhere.datasets()


def test_runs_with_seeds_are_waited_for_through_their_websockets_then_read_as_dataframes(client, monkeypatch):
    dataset = _fake_dataset(client, "Three seeds")
    runs = client.start_runs(dataset, seeds=[0, 1, 2], backend=FAKE, settings={"iterations": 8})
    assert [(r.seed, r.status, r.method) for r in runs] == [(0, "queued", "icm"), (1, "queued", "icm"),
                                                           (2, "queued", "icm")]
    reads = []
    read = client.run
    monkeypatch.setattr(client, "run", lambda r: reads.append(r) or read(r))
    # A poll far longer than the runs take: only the websockets can tell wait() they ended in time.
    done = client.wait(runs, poll_s=30, timeout=120)
    assert sorted(reads) == sorted(r.id for r in runs)  # over HTTP only once each, at the end
    assert [(r.id, r.status) for r in done] == [(r.id, "succeeded") for r in runs]
    assert all(r.step == r.total_steps == 8 and r.label_set and r.gold["n"] == 12 for r in done)

    table = runs_frame(done)
    assert list(table.index) == [r.id for r in runs] and list(table["seed"]) == [0, 1, 2]
    assert table["accuracy"].between(0, 1).all()

    # The seeds' consensus is written just after the last seed's status: wait for it (four ICM sets).
    deadline = time.monotonic() + 30
    while (sets := client.label_sets(dataset)).kind.eq("icm").sum() < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sets.loc[sets.kind == "gold", "column"].tolist() == ["gold v1"]
    assert "ICM consensus v1" in set(sets["column"])
    seed_sets = [client.label_set(r) for r in done]
    assert set(sets.loc[sets.kind == "icm", "column"]) >= {s.column for s in seed_sets}
    labels = client.labels(dataset, scores=True)
    assert list(labels.index) == [r["id"] for r in FAKE_ROWS] and labels.index.name == "id"
    assert labels["gold v1"].tolist() == [r["label"] for r in FAKE_ROWS]
    for s in seed_sets:
        assert str(labels[s.column].dtype) == "boolean" and str(labels[f"{s.column} score"].dtype) == "Float64"
    # The same columns from records, runs or the label sets' frame.
    chosen = client.labels(done)
    assert list(chosen.columns) == [s.column for s in seed_sets]
    assert chosen.equals(client.labels(sets[sets.index.isin([s.id for s in seed_sets])])[chosen.columns])

    report = client.agreement(dataset, done)
    assert isinstance(report, AgreementReport) and report.gold["name"] == "gold"
    accuracy = report.frame("accuracy")
    assert accuracy["name"].tolist() == [s.column for s in seed_sets] and (accuracy["n"] == 12).all()
    expected = labels[[s.column for s in seed_sets]].eq(labels["gold v1"], axis=0).mean()
    assert accuracy.set_index("name")["accuracy"].round(6).to_dict() == expected.round(6).to_dict()
    kappa = report.frame("kappa")
    assert len(kappa) == 6 and "gold v1" in set(kappa["second_name"])  # the three sets and gold, pairwise
    assert client.agreement(dataset).frame("accuracy")["name"].tolist() == sets.loc[
        sets.kind != "gold", "column"].tolist()
    methods = client.methods(dataset)
    assert methods[0]["method"] == "icm" and methods[0]["n_seeds"] == 3


def test_wait_reads_runs_over_http_where_the_websocket_is_refused_or_not_wanted(client, monkeypatch):
    dataset = _fake_dataset(client, "Polled")
    runs = client.start_runs(dataset, seeds=[0, 1], backend=FAKE, settings={"iterations": 6})
    # No websocket at this path: the server refuses the handshake, and wait() polls instead.
    monkeypatch.setattr(client, "_ws_url", lambda run_id: client.url.replace("http", "ws", 1) + "/ws/nowhere/")
    assert [r.status for r in client.wait(runs, poll_s=0.2, timeout=120, progress=False)] == ["succeeded"] * 2
    monkeypatch.undo()
    more = client.start_runs(dataset, seeds=[3], backend=FAKE, settings={"iterations": 6})
    assert client.wait(more[0].id, websocket=False, poll_s=0.2, timeout=120)[0].status == "succeeded"


# -- the client alone ------------------------------------------------------------------------------------------------


def _run_json(run_id: int, status: str, **extra) -> dict:
    return {"id": run_id, "dataset": 1, "method": "icm", "status": status, "seed": 0, "error": "",
            "progress": {"step": 3, "total_steps": 10}, "label_set": None, **extra}


def _mock_client(handler) -> Client:
    return Client("http://icm.test", token="t", transport=httpx.MockTransport(handler))


def test_wait_raises_run_failed_naming_each_failed_run_with_its_error():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        run_id = int(request.url.path.split("/")[3])
        if run_id == 7:
            return httpx.Response(200, json=_run_json(7, "failed", error="the model server is unreachable"))
        return httpx.Response(200, json=_run_json(8, "succeeded", label_set=3))

    with _mock_client(handler) as client:
        with pytest.raises(RunFailed) as caught:
            client.wait([7, 8], websocket=False, progress=False, poll_s=0.01)
        assert [r.id for r in caught.value.failed] == [7]
        assert "1 of 2 runs failed" in str(caught.value)
        assert "run 7 (icm, seed 0): the model server is unreachable" in str(caught.value)
        ended = client.wait([7, 8], websocket=False, progress=False, raise_on_failure=False)
        assert [r.status for r in ended] == ["failed", "succeeded"]
    assert set(seen) == {"Token t"}


def test_wait_gives_up_after_its_timeout_naming_the_runs_still_active():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=_run_json(5, "running"))

    started = time.monotonic()
    with _mock_client(handler) as client, pytest.raises(WaitTimeout, match=r"after 0\.3 s: 5 \(running\)") as caught:
        client.wait(5, websocket=False, progress=True, poll_s=30, timeout=0.3)
    assert isinstance(caught.value, TimeoutError) and caught.value.runs[0].active
    assert time.monotonic() - started < 10  # the timeout, not the next poll, ends the wait


def test_a_table_is_uploaded_as_parquet_with_its_types_and_a_named_index_as_a_column():
    sent = {}

    def handler(request: httpx.Request) -> httpx.Response:
        body = request.read()
        sent["parquet"] = body[body.index(b"PAR1"):body.rindex(b"PAR1") + 4]
        sent["form"] = body
        return httpx.Response(201, json={"id": 1, "name": "n", "task": "claims", "future_field": 1})

    frame = pd.DataFrame({"id": ["x", "y", "z"], "n": [1, 2, 3], "label": [True, False, True]})
    with _mock_client(handler) as client:
        dataset = client.upload(frame[frame.label], task="claims", name="my claims / v2")
        table = pq.read_table(io.BytesIO(sent["parquet"]))
        assert table.column_names == ["id", "n", "label"] and table.schema.field("n").type == pa.int64()
        assert b'filename="my_claims___v2.parquet"' in sent["form"] and b"my claims / v2" in sent["form"]
        assert dataset.raw["future_field"] == 1  # a field this package does not name yet is kept
        client.upload(frame.set_index("id"), task="claims")
        assert pq.read_table(io.BytesIO(sent["parquet"])).column_names == ["n", "label", "id"]
        with pytest.raises(TypeError, match="cannot upload a list"):
            client.upload([1, 2], task="claims")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="a bare id could name a dataset or a label set"):
            client.labels(3)  # type: ignore[arg-type]


def test_api_errors_read_every_shape_the_api_answers_with():
    nested = APIError.from_response(400, {"config": {"iterations": ["must be at least 0"]},
                                          "seeds": {"1": ["too large"]}})
    assert nested.fields == {"config.iterations": ["must be at least 0"], "seeds.1": ["too large"]}
    assert nested.message == "config.iterations: must be at least 0; seeds.1: too large"
    login = APIError.from_response(400, {"non_field_errors": ["Unable to log in with the given credentials."]})
    assert login.message == "Unable to log in with the given credentials."
    assert APIError.from_response(400, ["one", "two"]).message == "one two"
    page = APIError.from_response(502, "<html>Bad Gateway</html>", "Bad Gateway")
    assert str(page) == "HTTP 502: Bad Gateway: <html>Bad Gateway</html>" and page.problems == []
    rejected = APIError.from_response(400, {"detail": "f.csv: row 2, field 'label': bad (and 1 more problems)",
                                            "problems": [{"file": "f.csv", "row": 2, "field": "label",
                                                          "message": "bad"},
                                                         {"file": "f.csv", "row": None, "field": None,
                                                          "message": "too long"}]})
    assert [str(p) for p in rejected.problems] == ["f.csv: row 2, field 'label': bad", "f.csv: too long"]
    assert rejected.fields == {} and str(rejected).splitlines()[1:] == ["  f.csv: row 2, field 'label': bad",
                                                                       "  f.csv: too long"]


def _label_set(pk: int, name: str, kind: str = "icm", run: int | None = None) -> LabelSet:
    return LabelSet.from_json({"id": pk, "dataset": 1, "kind": kind, "name": name, "version": 1, "run": run,
                               "n_labels": 2, "n_true": 1, "n_false": 1})


def test_labels_line_up_by_example_with_missing_labels_as_na_and_scores_after_them():
    gold, icm = _label_set(1, "gold", "gold"), _label_set(2, "icm run 4", run=4)
    frame = labels_frame([
        (gold, [{"example_id": "b", "label": True, "score": None}, {"example_id": "a", "label": False,
                                                                     "score": None}]),
        (icm, [{"example_id": "a", "label": True, "score": 1.5}, {"example_id": "c", "label": False,
                                                                  "score": -0.5}]),
    ], scores=True)
    assert list(frame.index) == ["b", "a", "c"] and frame.index.name == "id"
    assert list(frame.columns) == ["gold v1", "icm run 4 v1", "gold v1 score", "icm run 4 v1 score"]
    assert frame["gold v1"].tolist() == [True, False, pd.NA] and frame["icm run 4 v1"].tolist() == [pd.NA, True, False]
    assert str(frame["gold v1"].dtype) == "boolean" and str(frame["icm run 4 v1 score"].dtype) == "Float64"
    assert frame["gold v1 score"].isna().all() and frame.loc["a", "icm run 4 v1 score"] == 1.5
    assert labels_frame([]).empty

    sets = label_sets_frame([gold, icm])
    assert list(sets.index) == [1, 2] and sets["column"].tolist() == ["gold v1", "icm run 4 v1"]
    assert str(sets["run"].dtype) == "Int64" and sets["run"].isna().tolist() == [True, False]


def test_the_agreement_reports_parts_name_their_label_sets():
    report = AgreementReport.from_json({
        "dataset": 1, "gold": {"id": 1, "name": "gold", "version": 2}, "stratified_by": "category",
        "label_sets": [{"id": 2, "name": "icm run 4", "version": 1, "kind": "icm"}],
        "accuracy": [{"label_set": 2, "n": 4, "accuracy": 0.75, "confusion": [[2, 0], [1, 1]]}],
        "by_stratum": [], "kappa": [{"first": 2, "second": 1, "kappa": 0.5}], "mcnemar": []})
    assert report.frame()[["label_set", "name", "accuracy"]].values.tolist() == [[2, "icm run 4 v1", 0.75]]
    assert report.frame("kappa")[["first_name", "second_name"]].values.tolist() == [["icm run 4 v1", "gold v2"]]
    assert report.frame("by_stratum").empty and report.frame("mcnemar").empty
    with pytest.raises(ValueError, match="choose one of accuracy, by_stratum, kappa, mcnemar"):
        report.frame("nope")


def test_a_redirect_is_an_api_error_naming_where_and_is_not_followed():
    asked = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(301, headers={"Location": "https://icm.test/api/datasets/"})

    with _mock_client(handler) as client, pytest.raises(APIError, match=re.escape(
            "redirects to https://icm.test/api/datasets/")) as caught:
        client.datasets()
    assert caught.value.status == 301 and asked == ["http://icm.test/api/datasets/?page=1&page_size=500"]

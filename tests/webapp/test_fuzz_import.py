"""Property-based import tests: generated malformed and adversarial files against the import service and
the upload endpoint. Every file ends in a clear error naming where (and nothing written) or a correct
import; none ends in an unexpected exception, a 500 or a partial write, and no page shows its text
unescaped."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from icm_engine.examples import DataError
from webapp.datasets.models import Example
from webapp.datasets.services import create_dataset, jsonb_faithful

from .conftest import counts

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
NASTY = [SCRIPT, "<img src=x onerror=alert(1)>", "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\u202egnp.exe",
         'a,b\n"c', "\x00", "   ", "é\u0301", "\ud7ff", "NaN", "null"]
TEXT = st.one_of(st.text(max_size=30), st.sampled_from(NASTY),
                 st.text(min_size=1, max_size=3).map(lambda s: s * 20000))  # fields of tens of kilobytes
VALUE = st.one_of(TEXT, TEXT, st.integers(), st.floats(), st.booleans(), st.none(),
                  st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
LABEL = st.one_of(st.booleans(), st.sampled_from(["true", "false", "True", "0", "1", "yes", "maybe", ""]),
                  st.integers(-1, 2), st.floats(), st.none())
ROW = st.fixed_dictionaries(
    {"question": VALUE, "choice": VALUE},
    optional={"label": LABEL, "id": st.one_of(st.integers(0, 4), st.text(max_size=3), st.none()),
              "consistency_id": st.one_of(st.integers(0, 3), st.text(max_size=2)), "extra": VALUE})
GOOD_LABEL = st.one_of(st.booleans(), st.sampled_from(["true", "false", "0", "1"]), st.none())
GOOD_TEXT = st.one_of(st.text(min_size=1, max_size=30).filter(lambda t: t.strip() and "\x00" not in t),
                      st.sampled_from([n for n in NASTY if n.strip() and "\x00" not in n]),
                      st.text(min_size=1, max_size=3).filter(lambda t: t.strip() and "\x00" not in t)
                      .map(lambda t: t * 20000))
GOOD_ROW = st.fixed_dictionaries({"question": GOOD_TEXT, "choice": GOOD_TEXT},
                                 optional={"label": GOOD_LABEL, "consistency_id": st.integers(0, 3)})
# Mostly well-formed rows with the adversarial text, some rows of anything: both outcomes get exercised.
FILES = st.tuples(st.lists(st.one_of(GOOD_ROW, GOOD_ROW, GOOD_ROW, ROW), min_size=1, max_size=8),
                  st.sampled_from(["jsonl", "json", "csv", "parquet"]),
                  st.sampled_from([None, None, None, "truncate", "bad-utf8", "bom", "latin-1", "junk-line"]))


def _parquet(rows: list[dict]) -> bytes:
    """The rows as pyarrow writes them; where a column mixes types (pyarrow refuses), as text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def write(table: pa.Table) -> bytes:
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        return buffer.getvalue()

    try:
        return write(pa.Table.from_pylist(rows))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return write(pa.Table.from_pylist([{k: v if v is None or isinstance(v, str) else json.dumps(v)
                                            for k, v in r.items()} for r in rows]))


def encode(rows: list[dict], fmt: str, corruption: str | None) -> tuple[str, bytes]:
    if fmt == "parquet":
        data = _parquet(rows)
        if corruption == "truncate":
            data = data[: len(data) // 2]
        elif corruption == "bad-utf8":
            data = data[: len(data) // 3] + b"\xff\xfe\xc3" + data[len(data) // 3:]
        elif corruption in ("bom", "junk-line"):
            data = b"\xef\xbb\xbf" + data if corruption == "bom" else data + b"\n{not json\n"
        return "fuzz.parquet", data
    if fmt == "json":
        text = json.dumps(rows)
    elif fmt == "jsonl":
        text = "\n".join(json.dumps(r) for r in rows)
    else:
        out = io.StringIO()
        fields = sorted({k for r in rows for k in r}) or ["question"]
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        writer.writerows([{k: "" if v is None else v for k, v in r.items()} for r in rows])
        text = out.getvalue()
    data = text.encode("utf-8", "surrogatepass")
    if corruption == "truncate":
        data = data[: len(data) // 2]
    elif corruption == "bad-utf8":
        data = data[: len(data) // 3] + b"\xff\xfe\xc3" + data[len(data) // 3:]
    elif corruption == "bom":
        data = b"\xef\xbb\xbf" + data
    elif corruption == "latin-1":
        data = text.encode("latin-1", "replace")
    elif corruption == "junk-line":
        data += b"\n{not json, not csv\n"
    return f"fuzz.{fmt}", data


def check_outcome(filename: str, rows: list[dict], before, error: DataError | None, dataset) -> None:
    if error is not None:
        assert counts() == before, "a rejected import wrote something"
        assert error.problems and str(error).startswith(filename)
        for problem in error.problems:
            assert problem.source == filename and problem.message
            assert problem.row is None or problem.row >= 1
        return
    # Accepted: the whole file, nothing less.
    n = Example.objects.filter(dataset=dataset).count()
    assert n >= 1 and counts()[1] == before[1] + n
    assert counts()[0] == before[0] + 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(FILES)
def test_import_service_accepts_or_names_the_problem(owner, client, generated):
    rows, fmt, corruption = generated
    filename, data = encode(rows, fmt, corruption)
    before = counts()
    try:
        dataset = create_dataset(owner=owner, filename=filename, data=data, task="truthfulqa")
    except DataError as exc:
        event("rejected")
        check_outcome(filename, rows, before, exc, None)
        return
    event("accepted")
    check_outcome(filename, rows, before, None, dataset)
    if corruption is None and fmt in ("json", "jsonl"):
        # JSON keeps values as they were: every row is there, text unchanged.
        assert Example.objects.filter(dataset=dataset).count() == len(rows)
        stored = list(Example.objects.filter(dataset=dataset).order_by("position").values_list("fields", flat=True))
        for row, fields in zip(rows, stored, strict=True):
            # Unchanged, but for exponent floats, kept as their text (jsonb would rewrite 4.2e+16).
            assert fields["question"] == jsonb_faithful(row["question"])
            assert fields["choice"] == jsonb_faithful(row["choice"])
    if any(SCRIPT in str(v) for r in rows for v in r.values()):
        client.force_login(owner)
        for url in (f"/datasets/{dataset.pk}/", f"/datasets/{dataset.pk}/examples/"):
            html = client.get(url).content.decode()
            assert SCRIPT not in html, url


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(FILES, st.booleans())
def test_upload_endpoint_never_fails_with_a_server_error(owner_api, generated, dry_run):
    rows, fmt, corruption = generated
    filename, data = encode(rows, fmt, corruption)
    before = counts()
    body = {"file": SimpleUploadedFile(filename, data), "task": "truthfulqa"}
    if dry_run:
        body["dry_run"] = "true"
    resp = owner_api.post("/api/datasets/", body, format="multipart")
    assert resp.status_code in (200, 201, 400), (resp.status_code, resp.content[:500])
    if resp.status_code != 201:
        assert counts() == before
    if resp.status_code == 400:
        body = resp.json()
        if "problems" in body:
            assert body["problems"] and all(p["file"] == filename for p in body["problems"])
        else:  # refused by the form itself (an empty file): the error names the field
            assert set(body) == {"file"} and body["file"], body

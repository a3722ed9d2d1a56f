"""The Label Studio round trip against a real server: `label-studio` and `label-studio-sdk` from PyPI in their own
environment `.venv-ls` (made by `make ls-env`), started here on a free loopback port with its own SQLite.

ICM Studio exports a dataset's label sets as Label Studio tasks; through the SDK (tests/tools/ls_roundtrip.py)
a project with our labeling config takes them, its user adds an annotation, and the project's export comes
back into ICM Studio: gold, the ICM run's labels and scores, and the annotator's labels are those we sent,
plus the new annotation. Locally this skips without the environment; in CI (CI=true) it must exist.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.webapp.conftest import SMALL_ROWS, api_client, jsonl, make_user
from webapp.datasets.models import Example, Label, LabelSet, LabelSetSource, Membership
from webapp.datasets.services import create_dataset

from .conftest import ROOT

pytestmark = [pytest.mark.labelstudio]

LS_BIN = Path(os.environ.get("ICM_LS_BIN", ROOT / ".venv-ls" / "bin"))
TOOL = ROOT / "tests" / "tools" / "ls_roundtrip.py"
EMAIL, PASSWORD, TOKEN = "olivia@example.com", "round-trip-Pa55word", "icm-studio-round-trip-token"
START_TIMEOUT_S = 300  # the first start migrates a new SQLite database: about 30 s on two cores, more on a busy one


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory):
    """A Label Studio server of its own (data and SQLite in a temporary folder), its user's email the ICM Studio
    annotator's; stopped (its whole process group) at the end."""
    if not (LS_BIN / "label-studio").exists():
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"no Label Studio environment at {LS_BIN} "
                                                               "(make ls-env)")
    folder = tmp_path_factory.mktemp("label-studio")
    port = _free_port()
    # No error reports, analytics or version checks leave the machine; the legacy token lets the SDK in.
    env = {**os.environ, "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "", "COLLECT_ANALYTICS": "false",
           "LATEST_VERSION_CHECK": "false", "DJANGO_DB": "sqlite", "PYTHONUNBUFFERED": "1"}
    for leaked in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE"):  # ours, not Label Studio's
        env.pop(leaked, None)
    log = open(folder / "server.log", "wb")  # noqa: SIM115 (closed at teardown)
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(LS_BIN / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(folder / "data"), "--username", EMAIL, "--password", PASSWORD, "--user-token", TOKEN,
         "--enable-legacy-api-token"],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Label Studio exited ({proc.returncode}):\n{(folder / 'server.log').read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - started > START_TIMEOUT_S:
                pytest.fail(f"Label Studio did not answer in {START_TIMEOUT_S} s:\n"
                            f"{(folder / 'server.log').read_text()[-3000:]}")
            time.sleep(2)
        print(f"Label Studio answered after {time.monotonic() - started:.0f} s")
        yield url, folder
    finally:
        with _quietly():
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with _quietly():
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


class _quietly:
    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        return kind is ProcessLookupError


def _labels(label_set: LabelSet) -> dict[str, tuple[bool, float | None]]:
    return {lab.example.external_id: (lab.value, lab.score) for lab in label_set.labels.select_related("example")}


@pytest.mark.django_db
def test_round_trip_through_label_studio(label_studio, settings):
    settings.SECURE_SSL_REDIRECT = False  # the test client speaks plain HTTP
    settings.ICM_RUN_DISPATCH = "none"
    url, folder = label_studio
    owner = make_user("olivia")
    owner.email = EMAIL
    owner.save()
    dataset = create_dataset(owner=owner, filename="small.jsonl", data=jsonl(SMALL_ROWS), task="truthfulqa")
    ids = dict(Example.objects.filter(dataset=dataset).values_list("external_id", "pk"))
    icm = LabelSet.objects.create(dataset=dataset, kind="icm", name="icm run 3", source=LabelSetSource.RUN,
                                  model="gemma-3-270m", configuration={"run": 3, "method": "icm", "seed": 1,
                                                                       "config": {"readout": "split"}})
    scores = [2.25, -0.75, 13.5, -41.0, 0.125, -3.0, None, 0.5]
    Label.objects.bulk_create(Label(label_set=icm, example_id=ids[row["id"]], value=s is None or s > 0, score=s)
                              for row, s in zip(SMALL_ROWS, scores, strict=True))
    human = LabelSet.objects.create(dataset=dataset, kind="human", name="olivia's", source=LabelSetSource.ANNOTATION,
                                    annotator=owner)
    Label.objects.bulk_create([Label(label_set=human, example_id=ids["q0-0"], value=False),
                               Label(label_set=human, example_id=ids["q1-1"], value=True)])
    assert Membership.objects.filter(dataset=dataset, user=owner).exists()
    client = api_client(owner)

    def download(fmt: str) -> bytes:
        resp = client.get(f"/api/datasets/{dataset.pk}/export/?format={fmt}")
        assert resp.status_code == 200, resp.content
        return b"".join(resp.streaming_content) if resp.streaming else resp.content

    (folder / "config.xml").write_bytes(download("label-studio-config"))
    (folder / "tasks.json").write_bytes(download("label-studio"))
    out = folder / "export.json"
    started = time.monotonic()
    done = subprocess.run([str(LS_BIN / "python"), str(TOOL), url, TOKEN, str(folder / "config.xml"),
                           str(folder / "tasks.json"), "q3-0", "False", str(out)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    print(f"SDK round trip in {time.monotonic() - started:.0f} s: {done.stdout.strip()}")
    exported = json.loads(out.read_text())
    assert len(exported) == 8 and all("annotations" in t and "predictions" in t for t in exported)

    resp = client.post(f"/api/datasets/{dataset.pk}/label-studio/",
                       {"file": SimpleUploadedFile("project.json", out.read_bytes())}, format="multipart")
    assert resp.status_code == 201, resp.content
    back = {s["name"]: LabelSet.objects.get(pk=s["id"]) for s in resp.json()}
    assert set(back) == {"gold", "icm run 3", EMAIL}
    gold = LabelSet.objects.get(dataset=dataset, name="gold", version=1)
    assert _labels(back["gold"]) == _labels(gold)
    assert back["icm run 3"].kind == "icm"
    assert _labels(back["icm run 3"]) == _labels(icm)  # labels and scores exactly, -41 nats included
    assert back["icm run 3"].configuration["model_version"] == (
        "icm run 3 v1 [icm; run 3; readout split; seed 1; model gemma-3-270m; score P(label) from log-odds]")
    assert back[EMAIL].kind == "human" and back[EMAIL].annotator == owner
    assert _labels(back[EMAIL]) == {**_labels(human), "q3-0": (False, None)}

"""An id beyond the database's 64-bit integers, in a path, a query string or a body, is a 404 or a 400, never a
server error (SQLite cannot even bind one)."""

from __future__ import annotations

import pytest

from webapp.ids import MAX_ID, as_id
from webapp.runs.services import create_run

from .runs_helpers import FAKE, fake_dataset

BIG = str(2**70)


def test_as_id_takes_database_ids_only():
    assert as_id("42") == 42 and as_id(7) == 7 and as_id(str(MAX_ID)) == MAX_ID
    for bad in (BIG, str(MAX_ID + 1), "0", "-3", "4.0", "", " ", "x1", None, True, 1.0, -1):
        assert as_id(bad) is None, bad


@pytest.mark.django_db
def test_out_of_range_ids_never_reach_a_query(owner, owner_api, client, dataset):
    client.force_login(owner)
    ds = dataset.pk
    create_run(user=owner, dataset=fake_dataset(owner), backend=FAKE, config={"iterations": 2})
    gets = [f"/api/runs/?dataset={BIG}", f"/api/runs/{BIG}/", f"/api/datasets/{BIG}/", f"/api/labelsets/{BIG}/",
            f"/api/datasets/{ds}/agreement/?labelsets={BIG}", f"/api/datasets/{ds}/agreement/?gold={BIG}",
            f"/api/labelsets/{BIG}/agreement/?other={BIG}", f"/api/datasets/{ds}/examples/?page={BIG}",
            f"/api/datasets/?page={BIG}", f"/api/spotchecks/{BIG}/",
            f"/datasets/{BIG}/", f"/runs/{BIG}/", f"/labelsets/{BIG}/", f"/spotchecks/{BIG}/",
            f"/datasets/{ds}/review/?model={BIG}&gold={BIG}", f"/datasets/{ds}/agreement/?labelsets={BIG}",
            f"/datasets/{ds}/examples/?page={BIG}", f"/datasets/{ds}/runs/estimate/?limit={BIG}",
            f"/datasets/{ds}/examples/?sets={BIG}&label={BIG}:true", f"/datasets/{ds}/annotate/?after={BIG}",
            f"/datasets/{ds}/review/?cell=TF&i={BIG}"]
    for url in gets:
        c = owner_api if url.startswith("/api/") else client
        assert c.get(url).status_code in (200, 400, 404), url
    posts = [(f"/api/datasets/{ds}/verdicts/", {"example": BIG, "verdict": "ambiguous"}),
             (f"/api/datasets/{ds}/spotchecks/", {"gold": BIG, "size": 2}),
             (f"/api/datasets/{ds}/annotations/", {"example": BIG, "label": "true"}),
             ("/api/runs/", {"dataset": BIG, "method": "icm"})]
    for url, body in posts:
        assert owner_api.post(url, body, format="json").status_code in (400, 404), url
    assert owner_api.patch(f"/api/datasets/{ds}/members/{BIG}/", {"role": "viewer"}).status_code == 404

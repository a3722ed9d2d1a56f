"""A run end to end on the real packaged model (Gemma 3 270M), as the product runs it."""

from __future__ import annotations

import pytest

from webapp.datasets.services import create_dataset
from webapp.runs.execution import execute_run
from webapp.runs.models import Run

from ..conftest import SANITY

# transaction=True: the run's heartbeat thread has its own connection and must see the rows.
pytestmark = [pytest.mark.model, pytest.mark.django_db(transaction=True)]


def test_icm_and_zero_shot_runs_on_the_packaged_model(owner, owner_api):
    data = (SANITY / "claims_dev.jsonl").read_bytes()
    ds = create_dataset(owner=owner, filename="claims_dev.jsonl", data=data, task="claims", consistency="key:answer")
    body = {"dataset": ds.pk, "task": "claims", "limit": 8, "seed": 0,
            "config": {"iterations": 6, "batch_size": 8, "num_seed": 4, "fix_steps": 2,
                                "readout": "split", "context": "other-groups", "calibrate": True},
            "baselines": True}
    resp = owner_api.post("/api/runs/", body, format="json")
    assert resp.status_code == 201, resp.content
    runs = list(Run.objects.filter(dataset=ds).order_by("pk"))
    assert [r.method for r in runs] == ["icm", "zero-shot", "likelihood", "random-icl", "gold-icl"]
    for run in runs[:3]:
        assert execute_run(run.pk) == "succeeded", Run.objects.get(pk=run.pk).error
        run.refresh_from_db()
        ls = run.label_set
        assert ls.model == "gemma3-270m" and ls.configuration["backend"]["backend"] == "transformers"
        assert 0 < ls.labels.count() <= 8
        p = run.progress
        assert p["model_calls"] > 0 and p["computed_tokens"] > 0 and p["gold_n"] == ls.labels.count()
        assert all(lab.score is not None for lab in ls.labels.all())

"""The run form and the API take the engine's run settings as the engine describes them, and a run's settings
are the same whichever front door started it (the engine's `settings_for` fills in what is left out)."""

from __future__ import annotations

import pytest
import yaml

from icm_engine.facade import RUN_SETTINGS, settings_for
from webapp.runs.forms import RunForm
from webapp.runs.models import Run

from .conftest import api_client
from .runs_helpers import fake_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _queue_nothing(settings):
    settings.ICM_RUN_DISPATCH = "none"


def test_the_run_form_has_every_setting_with_its_choices_and_folds_the_advanced_ones():
    form = RunForm()
    advanced = {bound.name for bound in form.advanced_fields()}
    for name, setting in RUN_SETTINGS.items():
        field = form.fields[name]
        assert setting.help in field.help_text
        if setting.choices:
            assert {c for c, _ in field.choices} - {""} == set(setting.choices)
        assert (name in advanced) == setting.advanced, name


def test_the_api_schema_has_every_setting_typed_with_its_help(owner):
    schema = yaml.safe_load(api_client(owner).get("/api/schema/").content)
    config = schema["components"]["schemas"]["RunCreateRequest"]["properties"]["config"]["description"]
    typed = schema["components"]["schemas"]["RunSettingsRequest"]["properties"]
    for name, setting in RUN_SETTINGS.items():
        assert f"{name} (" in config and setting.help.rstrip(".") in config, name
        assert typed[name]["description"].startswith(setting.describe()), name  # one typed field per setting
        if setting.choices:
            assert _enum(typed[name], schema["components"]["schemas"]) == set(setting.choices), name


def _enum(prop: dict, components: dict) -> set:
    """A property's choices, inline or behind the references drf-spectacular makes for shared enums."""
    if "enum" in prop:
        return set(prop["enum"]) - {None, ""}
    found: set = set()
    for sub in (s for key in ("oneOf", "allOf", "anyOf") for s in prop.get(key, [])):
        found |= _enum(components[sub["$ref"].split("/")[-1]] if "$ref" in sub else sub, components)
    return found


def test_the_form_the_api_and_the_engine_give_a_run_the_same_settings(client, owner):
    ds = fake_dataset(owner)
    client.force_login(owner)
    page = {"method": "icm", "backend": "transformers", "seeds": "0", "alpha": "20", "calibrate": "on",
            "complete": "on"}  # the two checkboxes as the page ticks them for this preset
    assert client.post(f"/datasets/{ds.pk}/runs/new/", page).status_code == 302
    resp = api_client(owner).post("/api/runs/", {"dataset": ds.pk, "task": ds.task, "config": {"alpha": 20}},
                                  format="json")
    assert resp.status_code == 201, resp.content
    by_form, by_api = Run.objects.order_by("pk")
    engine = settings_for(ds.task_config, ds.examples.count(), {"alpha": 20.0})[0].as_dict()
    engine.pop("seed")
    assert by_form.config == by_api.config == engine
    assert by_form.config["alpha"] == 20.0 and by_form.config["batch_size"] == ds.examples.count()

"""One source for run settings: the config classes describe them, `settings_for` fills in what a run leaves
out, and the CLI, the docs' table (and, in tests/webapp, the run form and the API) are made from them."""

from __future__ import annotations

import re

import pytest

from icm_engine.baselines import BaselineConfig
from icm_engine.cli_args import build_parser
from icm_engine.defaults import PRESET_CHOICES
from icm_engine.presets import get_task
from icm_engine.run_settings import (
    BASELINE_SETTINGS,
    ICM_SETTINGS,
    RUN_SETTINGS,
    api_help,
    settings_for,
    settings_table,
)
from icm_engine.search import ICMConfig, sized_to

from .conftest import ROOT


def test_docs_cli_holds_the_table_the_settings_make():
    text = (ROOT / "docs" / "cli.md").read_text()
    found = re.search(r"<!-- settings table: start -->\n(.*?)\n<!-- settings table: end -->", text, re.S)
    assert found, "docs/cli.md has lost its settings table's markers"
    assert found.group(1) == settings_table(), "regenerate it: python -m icm_engine.run_settings"


def test_every_config_field_but_the_seed_is_a_described_setting():
    assert set(ICM_SETTINGS) == set(ICMConfig().as_dict()) - {"seed"}
    assert set(BASELINE_SETTINGS) == set(BaselineConfig().as_dict())
    for setting in RUN_SETTINGS.values():
        assert setting.help and setting.describe().startswith(setting.help.rstrip("."))


def test_the_cli_offers_every_setting_with_its_choices():
    sub = build_parser()._subparsers._group_actions[0].choices  # argparse keeps them there
    label = {a.dest: a for a in sub["label"]._actions}
    baseline = {a.dest: a for a in sub["baseline"]._actions}
    for name, setting in ICM_SETTINGS.items():
        assert name in label and label[name].default is None, name  # left out: settings_for fills it in
        if setting.choices:
            assert set(setting.choices) <= set(label[name].choices)
    assert set(BASELINE_SETTINGS) <= set(baseline)
    assert all(name in api_help() for name in RUN_SETTINGS)


def test_settings_for_takes_what_was_given_then_the_preset_then_the_datas_size_then_the_papers():
    task = get_task("claims", consistency="key:answer")
    choice = PRESET_CHOICES["claims"]
    config, from_preset = settings_for(task, 40, {"alpha": 20.0, "readout": "verdict"})
    assert config.alpha == 20.0 and config.readout == "verdict"  # given
    assert "readout" not in from_preset
    assert (config.context, config.centre, config.anchor) == (choice.context, choice.centre, choice.anchor)
    assert {"context", "centre", "calibrate", "anchor"} <= set(from_preset)  # the preset's
    assert (config.batch_size, config.iterations) == (sized_to(40)["batch_size"], sized_to(40)["iterations"])
    assert config.num_seed == ICMConfig().num_seed  # the paper's
    unsized, _ = settings_for(task, None, {})
    assert unsized.batch_size == ICMConfig().batch_size  # no size known yet: the config's own


def test_a_baseline_takes_the_readout_settings_and_no_anchor():
    task = get_task("claims", consistency="key:answer")
    config, from_preset = settings_for(task, 40, {"rounds": 1}, method="baseline")
    assert isinstance(config, BaselineConfig) and config.rounds == 1 and config.batch_size == 256
    assert config.readout == PRESET_CHOICES["claims"].readout and "anchor" not in from_preset


@pytest.mark.parametrize(("given", "method", "message"), [
    ({"alpah": 1.0}, "icm", "unknown settings for ICM: alpah"),
    ({"seed": 3}, "icm", "unknown settings for ICM: seed"),  # a run's seed is its own field, never a setting
    ({"alpha": 5.0}, "baseline", "unknown settings for a baseline: alpha"),
    ({"folds": 1}, "icm", "folds must be from 2 to 64"),
    ({"readout": "vibes"}, "baseline", "readout must be one of verdict, channel, split"),
    ({"iterations": 2.5}, "icm", "iterations must be an integer"),
    ({"complete": "yes"}, "icm", "complete must be true or false"),
])
def test_a_setting_it_does_not_take_is_an_error_that_names_it(given, method, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        settings_for(get_task("truthfulqa"), 8, given, method=method)

"""Each preset's readout choice fills only what the user left out; changed prompts fall back to the paper's
readout, calibrated."""

from __future__ import annotations

from icm_engine.defaults import CUSTOM, PRESET_CHOICES, choice_for, describe, resolve
from icm_engine.presets import PRESETS, get_task


def test_every_preset_has_a_calibrated_choice():
    assert set(PRESET_CHOICES) == set(PRESETS)
    assert all(c.calibrate for c in PRESET_CHOICES.values())


def test_given_settings_win_and_the_rest_come_from_the_preset():
    task = get_task("gsm8k")
    choice = PRESET_CHOICES["gsm8k"]
    settings, applied = resolve(task, {"readout": "channel", "context": None, "calibrate": False})
    assert settings == {"readout": "channel", "context": choice.context, "calibrate": False, "centre": choice.centre,
                        "anchor": None}
    assert applied == ["context", "centre"]
    settings, applied = resolve(task.describe(), {})
    assert settings == choice.settings() and applied == ["readout", "context", "calibrate", "centre"]
    report = describe(task, applied)
    assert report["readout"] == choice.readout and report["applied"] == applied
    assert report["chosen_in"] == "docs/defaults.md"


def test_changed_prompts_get_the_papers_readout_calibrated():
    assert choice_for(get_task("claims", template="Item: {text}\nLabel:")) == CUSTOM
    assert choice_for(get_task("truthfulqa", label_words=[" yes", " no"])) == CUSTOM
    # The consistency rule is not a prompt: the preset's choice still applies.
    assert choice_for(get_task("claims", consistency="key:answer")) == PRESET_CHOICES["claims"]
    # Nor is the likelihood's prefix (no readout reads it): a dataset stored with an earlier prefix keeps its choice.
    for name in ("truthfulqa", "claims"):
        earlier = get_task(name, likelihood_prefix="Question: {question}\nAnswer:").describe()
        assert earlier["likelihood_prefix"] != get_task(name).likelihood_prefix
        assert choice_for(earlier) == PRESET_CHOICES[name]
    assert CUSTOM.settings() == {"readout": "verdict", "context": "all", "calibrate": True, "centre": "batch",
                                 "anchor": None}



def test_a_preset_may_choose_the_anchor_and_zero_shot_seeds_leave_it_to_the_search(monkeypatch):
    """The anchor is part of a preset's choice (docs/defaults.md); a given one wins, and seeds from zero-shot
    (which an anchor "likelihood" would label instead) leave it to the search semantics."""
    from dataclasses import replace

    monkeypatch.setitem(PRESET_CHOICES, "claims", replace(PRESET_CHOICES["claims"], anchor="likelihood"))
    task = get_task("claims", consistency="key:answer")
    settings, applied = resolve(task, {})
    assert settings["anchor"] == "likelihood" and "anchor" in applied
    assert resolve(task, {"anchor": "none"})[0]["anchor"] == "none"  # given wins
    settings, applied = resolve(task, {"init": "zero-shot"})
    assert settings["anchor"] is None and "anchor" not in applied
    # An anchor left to the search semantics supplies nothing.
    assert "anchor" not in resolve(get_task("gsm8k"), {})[1]
    # Every preset's prompts read the fields the anchor's prompt needs: choosing it asks no more of a dataset.
    for name in PRESETS:
        preset = get_task(name)
        assert set(preset.likelihood_fields()) <= set(preset.required_fields(PRESET_CHOICES[name].readout))

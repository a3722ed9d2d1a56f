from django import forms

from icm_engine.facade import BASELINE_SETTINGS, DEFAULT_MODEL, ICM_SETTINGS, RUN_SETTINGS, Setting

from .backends import allowed_backends, allowed_models, openai_base_urls, openai_models
from .models import RunMethod
from .selectors import BASELINES, DEFAULT_BASELINES


class RunForm(forms.Form):
    method = forms.ChoiceField(choices=RunMethod.choices, initial=RunMethod.ICM)
    baselines = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple, label="Baselines beside ICM",
        choices=[(m, RunMethod(m).label) for m in BASELINES], initial=list(DEFAULT_BASELINES),
        help_text="Run with the same settings, so ICM is shown beside them; the cost table prices each. The "
                  "likelihood needs the examples' fields for it, golden-label ICL gold on every example. None "
                  "ticked: ICM alone.")
    # Only what the operator offers (webapp/runs/backends.py): the request cannot name another server or folder.
    backend = forms.ChoiceField(choices=lambda: [(b, b) for b in allowed_backends()], initial="transformers",
                                error_messages={"invalid_choice": "this server does not offer that backend"})
    model = forms.ChoiceField(
        required=False, choices=lambda: [("", f"the packaged {DEFAULT_MODEL}")] + [
            (m, m) for m in dict.fromkeys([*allowed_models()[1:], *openai_models()])],
        error_messages={"invalid_choice": "this server does not offer that model"},
        help_text="The models this server offers (ICM_ALLOWED_MODELS; ICM_OPENAI_MODELS for the openai backend).")
    base_url = forms.ChoiceField(
        required=False, choices=lambda: [("", "the server's default")] + [(u, u) for u in openai_base_urls()],
        label="Model server", error_messages={"invalid_choice": "this server does not offer that model server"},
        help_text="openai backend: one of the servers this server offers (ICM_OPENAI_BASE_URLS).")
    seeds = forms.CharField(
        initial="0, 1, 2", max_length=200,
        help_text="One run per seed for ICM and random-label ICL (their labels depend on it): the dataset page "
                  "shows the spread over seeds. Zero-shot runs once.")
    limit = forms.IntegerField(required=False, min_value=1, help_text="Only the first N examples (whole groups).")
    shards = forms.IntegerField(
        required=False, min_value=1,
        help_text="ICM: split the batches over this many runs that workers execute in parallel (the labels are "
                  "those of one run with the same seed).")
    # Besides the settings the engine folds (setting.py's `advanced`), in the form's "Advanced" fold.
    ADVANCED = ("shards",)
    # The form's groups, in order; what no group names (and is not advanced) goes under "Search".
    GROUPS = (("What to label", ("limit",)),
              ("Method and seeds", ("method", "seeds", "baselines")),
              ("Model", ("backend", "model", "base_url")))

    def __init__(self, *args, available_baselines: list[str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for setting in RUN_SETTINGS.values():  # the engine's run settings, each as it describes itself
            self.fields[setting.name] = setting_field(setting)
        if not openai_base_urls():  # no model server offered: nothing to choose
            del self.fields["base_url"]
        if available_baselines is not None:  # only those this dataset can run, the default ones ticked
            field = self.fields["baselines"]
            field.choices = [(m, label) for m, label in field.choices if m in available_baselines]
            field.initial = [m for m in DEFAULT_BASELINES if m in available_baselines]

    def _advanced(self, name: str) -> bool:
        return name in self.ADVANCED or (name in RUN_SETTINGS and RUN_SETTINGS[name].advanced)

    def groups(self) -> list[tuple[str, list]]:
        named = {f for _, fields in self.GROUPS for f in fields}
        rest = [self[f] for f in self.fields if f not in named and not self._advanced(f)]
        return [(legend, [self[f] for f in fields if f in self.fields]) for legend, fields in self.GROUPS] + [
            ("Search", rest)]

    def advanced_fields(self) -> list:
        return [self[f] for f in self.fields if self._advanced(f)]

    def clean_seeds(self) -> list[int]:
        try:
            seeds = [int(x) for x in self.cleaned_data["seeds"].replace(",", " ").split()]
        except ValueError:
            raise forms.ValidationError("Give the seeds as integers separated by commas.") from None
        if not seeds:
            raise forms.ValidationError("Give at least one seed.")
        return seeds

    def config_for(self, method: str) -> dict:
        """The settings the form gives for `method` (ICM, or any baseline): those left empty are left out, for
        the engine's `settings_for` to fill in."""
        names = ICM_SETTINGS if method == RunMethod.ICM else BASELINE_SETTINGS
        return {k: self.cleaned_data[k] for k in names if self.cleaned_data.get(k) is not None}


TRI_STATE = {"": None, "on": True, "off": False}


def setting_field(setting: Setting) -> forms.Field:
    """A form field for one run setting: its choices, bounds, default and help as the engine describes them.
    Every field but a checkbox may be left empty, which leaves the setting to the engine's layers."""
    help_text = setting.help + "." + (f" Empty: {setting.empty}." if setting.empty else "")
    common: dict = {"required": False, "help_text": help_text, "label": setting.label or None}
    initial = None if setting.optional else setting.default
    if setting.kind is bool and setting.nullable:
        return forms.TypedChoiceField(choices=[("", setting.empty), ("on", "on"), ("off", "off")],
                                      coerce=TRI_STATE.get, empty_value=None, **common)
    if setting.kind is bool:
        return forms.BooleanField(initial=initial, **common)
    if setting.choices:
        blank = [("", setting.empty)] if setting.optional else []
        return forms.TypedChoiceField(choices=blank + [(c, c) for c in setting.choices], empty_value=None,
                                      initial=initial, **common)
    bounds = {"min_value": setting.low, "max_value": setting.high}
    if setting.kind is int:
        return forms.IntegerField(initial=initial, **bounds, **common)
    return forms.FloatField(initial=initial, **bounds, **common)

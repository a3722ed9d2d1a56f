from django import forms

from icm_engine.facade import (
    ANCHORS,
    CONTEXTS,
    DEFAULT_MODEL,
    DEMO_ORDERS,
    INITS,
    ITERATIONS_PER_EXAMPLE,
    MODES,
    ORIENTATIONS,
    PAPER_BATCH_SIZE,
    PAPER_ITERATIONS,
    READOUTS,
    SCHEDULES,
    SCOPES,
    SEMANTICS,
    ICMConfig,
)

from .backends import allowed_backends, allowed_models, openai_base_urls, openai_models
from .models import RunMethod
from .selectors import BASELINES, DEFAULT_BASELINES

D = ICMConfig()


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
    readout = forms.ChoiceField(choices=[(r, r) for r in READOUTS], initial=D.readout)
    context = forms.ChoiceField(choices=[(c, c) for c in CONTEXTS], initial=D.context)
    calibrate = forms.BooleanField(required=False, initial=D.calibrate)
    centre = forms.ChoiceField(
        choices=[("", "the preset's")] + [(c, c) for c in SCOPES], required=False, label="Calibration subtracts",
        help_text="batch: the labeled examples' mean log-odds; group: each consistency group's, so a claim counts by "
                  "how it compares with its group mates (not by how well the context fits their shared topic).")
    folds = forms.IntegerField(
        min_value=2, max_value=64, initial=D.folds, required=False,
        help_text="With the other-folds context: the batch's groups are dealt into this many folds, and each example "
                  "sees the labeled examples of the other folds.")
    complete = forms.BooleanField(
        required=False, initial=D.complete, label="Label every example",
        help_text="After the search, the examples it left unlabeled get the model's prediction with the searched "
                  "labels as context, within the consistency rule. Off: the search's partial labeling.")
    orient = forms.ChoiceField(
        choices=[(o, o) for o in ORIENTATIONS], initial=D.orient, required=False, label="Name the classes by",
        help_text="What decides which class is True after the search (a labeling and its mirror image are equally "
                  "coherent): auto (the claim likelihood and zero-shot, chosen on development data), one signal, or "
                  "none (the search's own naming, with a warning).")
    iterations = forms.IntegerField(
        min_value=0, required=False,
        help_text=f"Search iterations per batch. Empty: {ITERATIONS_PER_EXAMPLE} per example of a batch, at most the "
                  f"paper's {PAPER_ITERATIONS}.")
    batch_size = forms.IntegerField(
        min_value=2, required=False,
        help_text=f"Examples per batch (ICM's cost grows with its square). Empty: the paper's {PAPER_BATCH_SIZE}, or "
                  "all of them when fewer. Baselines: 256 when empty.")
    num_seed = forms.IntegerField(min_value=0, initial=D.num_seed, label="Initial random labels (K)",
                                  help_text="The paper's 8: labels drawn at random (balanced) to start the search.")
    alpha = forms.FloatField(initial=D.alpha, help_text="Weight of mutual predictability against conflicts in U "
                                                        "(the paper's 50; lower it when few proposals are accepted).")
    initial_temperature = forms.FloatField(initial=D.initial_temperature,
                                           help_text="Annealing's starting temperature (the paper's 10).")
    final_temperature = forms.FloatField(initial=D.final_temperature,
                                         help_text="The temperature's floor (the paper's 0.01).")
    cooling = forms.FloatField(initial=D.cooling, help_text="The schedule's decay (the paper's 0.99).")
    schedule = forms.ChoiceField(choices=[("", "the mode's own")] + [(s, s) for s in SCHEDULES], required=False)
    fix_steps = forms.IntegerField(min_value=0, initial=D.fix_steps,
                                   help_text="ConsistencyFix rounds after each proposal (the paper's 10).")
    boost = forms.FloatField(initial=D.boost, help_text="How much likelier an unlabeled example that shares a group "
                                                        "with a labeled one is to be proposed (the paper's 100).")
    mode = forms.ChoiceField(choices=[(m, m) for m in MODES], initial=D.mode)
    semantics = forms.ChoiceField(
        choices=[("", "the mode's own")] + [(s, s) for s in SEMANTICS], required=False,
        help_text="The search's choices: paper (fast's own) or code (the official code's: the first K seeded, its "
                  "repair and schedule). Fast with code is the official algorithm on the fast scorer.")
    init = forms.ChoiceField(choices=[(i, i) for i in INITS], initial=D.init)
    demo_order = forms.ChoiceField(
        choices=[(o, o) for o in DEMO_ORDERS], initial=D.demo_order, required=False, label="Demonstration order",
        help_text="fast mode: position (the official code) or labeled (in the order examples were labeled: a new "
                  "label joins each prompt at its end, so the model reuses the rest of every prompt).")
    anchor = forms.ChoiceField(
        choices=[("", "the semantics' own")] + [(a, a) for a in ANCHORS], required=False,
        help_text="The model's zero-shot likelihood of each claim (compared within its group) as a term of U. "
                  "agreeing (the paper semantics' own): it joins a third of the way through each batch, weighted by "
                  "how far it agrees with the labels found by then. likelihood: the initial labels follow it and it "
                  "counts from the start. none: the paper's U (the code semantics' own).")
    anchor_weight = forms.FloatField(
        required=False, min_value=0, initial=D.anchor_weight,
        help_text="The anchor's weight in U beside mutual predictability, each measured in its own spread. 0: it "
                  "only seeds (anchor likelihood).")
    normalize = forms.ChoiceField(
        choices=[("", "the semantics' own"), ("on", "on"), ("off", "off")], required=False,
        label="Mutual predictability in the readout's own units",
        help_text="On (the paper semantics' own): P is divided by the spread of the readout's log-odds, so alpha and "
                  "the temperatures mean the same under every readout. Off: nats, as the official code.")
    context_cap = forms.IntegerField(
        required=False, min_value=1,
        help_text="Approximation, off when empty: each target sees at most N demonstrations (a fixed choice per "
                  "target), so a label change re-scores only the targets that show it.")
    shards = forms.IntegerField(
        required=False, min_value=1,
        help_text="ICM: split the batches over this many runs that workers execute in parallel (the labels are "
                  "those of one run with the same seed).")
    shots = forms.IntegerField(required=False, min_value=1, help_text="Baselines: cap the demonstrations per prompt.")
    rounds = forms.IntegerField(min_value=0, initial=3, help_text="Bootstrap rounds.")

    # In the form's "Advanced" fold: the paper's values, each with a line of help.
    ADVANCED = ("num_seed", "alpha", "initial_temperature", "final_temperature", "cooling", "schedule", "fix_steps",
                "boost", "semantics", "init", "demo_order", "anchor", "anchor_weight", "normalize", "context_cap",
                "shards", "shots", "rounds", "context", "centre", "folds", "orient")
    # The form's groups, in order; what no group names (and is not advanced) goes under "Search".
    GROUPS = (("What to label", ("limit",)),
              ("Method and seeds", ("method", "seeds", "baselines")),
              ("Model", ("backend", "model", "base_url")))

    def __init__(self, *args, available_baselines: list[str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not openai_base_urls():  # no model server offered: nothing to choose
            del self.fields["base_url"]
        if available_baselines is not None:  # only those this dataset can run, the default ones ticked
            field = self.fields["baselines"]
            field.choices = [(m, label) for m, label in field.choices if m in available_baselines]
            field.initial = [m for m in DEFAULT_BASELINES if m in available_baselines]

    def groups(self) -> list[tuple[str, list]]:
        named = {f for _, fields in self.GROUPS for f in fields}
        rest = [self[f] for f in self.fields if f not in named and f not in self.ADVANCED]
        return [(legend, [self[f] for f in fields if f in self.fields]) for legend, fields in self.GROUPS] + [
            ("Search", rest)]

    def advanced_fields(self) -> list:
        return [self[f] for f in self.fields if f in self.ADVANCED]

    ICM_FIELDS = ("readout", "context", "calibrate", "centre", "folds", "iterations", "batch_size", "num_seed", "alpha",
                  "initial_temperature", "final_temperature", "cooling", "schedule", "fix_steps", "boost", "mode",
                  "semantics", "init", "anchor", "anchor_weight", "normalize", "demo_order", "context_cap", "complete",
                  "orient")
    BASELINE_FIELDS = ("readout", "context", "calibrate", "centre", "folds", "batch_size", "shots", "rounds")

    def clean_seeds(self) -> list[int]:
        try:
            seeds = [int(x) for x in self.cleaned_data["seeds"].replace(",", " ").split()]
        except ValueError:
            raise forms.ValidationError("Give the seeds as integers separated by commas.") from None
        if not seeds:
            raise forms.ValidationError("Give at least one seed.")
        return seeds

    def config_for(self, method: str) -> dict:
        d = self.cleaned_data
        if method == RunMethod.ICM:
            params = {k: d[k] for k in self.ICM_FIELDS}
            params["schedule"] = params["schedule"] or None
            params["semantics"] = params["semantics"] or None
            params["anchor"] = params["anchor"] or None
            if params["anchor_weight"] is None:
                params["anchor_weight"] = D.anchor_weight
            params["normalize"] = {"on": True, "off": False}.get(params["normalize"])
            params["folds"] = params["folds"] or D.folds
            params["demo_order"] = params["demo_order"] or D.demo_order
            params["orient"] = params["orient"] or D.orient
            params["centre"] = params["centre"] or None
            return params
        params = {k: d[k] for k in self.BASELINE_FIELDS}
        params["batch_size"] = params["batch_size"] or PAPER_BATCH_SIZE
        params["folds"] = params["folds"] or D.folds
        params["centre"] = params["centre"] or None
        return params

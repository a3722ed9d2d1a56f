"""Serializers of the runs endpoints and of a dataset's method table (runs summarised over seeds)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework_dataclasses.serializers import DataclassSerializer

from icm_engine.facade import PRESETS, RUN_SETTINGS, Setting, api_help
from webapp.runs.models import RunMethod, RunStatus
from webapp.runs.progress import HELP as RUN_PROGRESS_HELP
from webapp.runs.progress import RunProgress

from .common import GoldComparisonSerializer, StrictCharField

# Every setting as the engine describes it (icm_engine/setting.py), so the help cannot fall behind.
SETTINGS_HELP = api_help()


def _setting_field(setting: Setting) -> serializers.Field:
    common = {"required": False, "allow_null": True, "help_text": setting.describe()}
    if setting.choices:
        return serializers.ChoiceField(choices=list(setting.choices), **common)
    if setting.kind is bool:
        return serializers.BooleanField(**common)
    bounds = {"min_value": setting.low, "max_value": setting.high}
    if setting.kind is int:
        return serializers.IntegerField(**bounds, **common)
    return serializers.FloatField(**bounds, **common)


# A run's settings as the schema shows them, one typed field per setting, made from the engine's descriptions.
# The engine checks a request's values itself (settings_for): one check, with its own messages.
RunSettingsSerializer = type("RunSettingsSerializer", (serializers.Serializer,), {
    "__doc__": "A run's settings; each left out takes the preset's choice, the data's size, then the paper's.",
    **{name: _setting_field(setting) for name, setting in RUN_SETTINGS.items()}})


@extend_schema_field(RunSettingsSerializer)
class _Settings(serializers.DictField):
    """The settings as sent: the engine refuses a name or a value it does not take, naming it."""


class RunCreateSerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    task = serializers.ChoiceField(choices=sorted(PRESETS), help_text="must be the dataset's task preset")
    method = serializers.ChoiceField(choices=RunMethod.choices, default=RunMethod.ICM)
    backend = StrictCharField(default="transformers")
    model = StrictCharField(required=False, allow_blank=True, default="")
    base_url = serializers.URLField(required=False, help_text="openai backend: the server's URL")
    seed = serializers.IntegerField(default=0, min_value=-(2**31), max_value=2**31 - 1,
                                    help_text="one seed (seeds, when given, replaces it)")
    seeds = serializers.ListField(
        child=serializers.IntegerField(min_value=-(2**31), max_value=2**31 - 1), required=False, min_length=1,
        max_length=20,
        help_text="one run per seed (distinct, at most ICM_MAX_SEEDS) for the methods whose labels depend on it "
                  "(ICM and random-label ICL; bootstrap and golden ICL only where `shots` samples their "
                  "demonstrations), each with its own label set; the others run once")
    limit = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                     help_text="only the first N examples, in whole consistency groups")
    config = _Settings(required=False, default=dict, help_text=SETTINGS_HELP)
    baselines = serializers.BooleanField(
        default=False, help_text="with method icm: also queue the default baselines, zero-shot, the zero-shot "
                                "likelihood (where the examples have its fields), random-label ICL and golden-label "
                                "ICL (where every example has gold)")
    baseline_methods = serializers.ListField(
        child=serializers.ChoiceField(choices=["zero-shot", "likelihood", "random-icl", "bootstrap", "gold-icl"]),
        required=False, max_length=5,
        help_text="with method icm: exactly these baselines instead of the default ones (bootstrap included if "
                  "named); each must be one the dataset can run")
    shards = serializers.IntegerField(
        required=False, allow_null=True, min_value=1,
        help_text="ICM: split the batches into this many runs that workers execute in parallel; their labels "
                  "are those of one whole run with the same seed")

    def validate(self, attrs: dict) -> dict:
        # The settings were sent as "hyperparameters" before they took the run's own name; ignoring that key
        # would start runs with defaults the client did not ask for.
        if "hyperparameters" in self.initial_data:
            raise serializers.ValidationError({"hyperparameters": "renamed: send the run's settings as config"})
        return attrs


class RunProgressSerializer(DataclassSerializer):
    """The progress record (webapp.runs.progress.RunProgress), field for field."""

    gold = GoldComparisonSerializer(required=False, allow_null=True, help_text=RUN_PROGRESS_HELP["gold"])
    batch_u = serializers.DictField(child=serializers.FloatField(), required=False,
                                    help_text=RUN_PROGRESS_HELP["batch_u"])
    recent_changes = serializers.ListField(child=serializers.DictField(), required=False)
    orientation = serializers.ListField(child=serializers.DictField(), required=False,
                                        help_text=RUN_PROGRESS_HELP["orientation"])

    class Meta:
        dataclass = RunProgress
        extra_kwargs = {name: {"help_text": text} for name, text in RUN_PROGRESS_HELP.items()
                        if name not in ("gold", "batch_u", "orientation")}


class RunShardSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    batch_range = serializers.ListField(child=serializers.IntegerField())
    worker = StrictCharField(allow_blank=True)
    attempts = serializers.IntegerField()
    labeled = serializers.IntegerField()
    step = serializers.IntegerField()
    total_steps = serializers.IntegerField()


class _Time(serializers.DateTimeField):
    """A time as Python writes it (`+00:00`), as the live page and the API have always had it."""

    def to_representation(self, value):
        return value.isoformat() if value else None


@extend_schema_field(RunProgressSerializer)
class _Progress(serializers.DictField):
    """The progress record as the snapshot holds it (every RunProgress field, the gold comparison whole)."""


@extend_schema_field(RunShardSerializer(many=True))
class _Shards(serializers.ListField):
    """A sharded run's shards, each as RunShardSerializer says."""


class RunSerializer(serializers.Serializer):
    """A run as the API, the live page and its websocket show it: the one list of what a run shows
    (webapp.runs.selectors.snapshot makes every snapshot with it)."""

    id = serializers.IntegerField()
    dataset = serializers.IntegerField(source="dataset_id")
    method = StrictCharField()
    task = StrictCharField()
    backend = StrictCharField()
    model = StrictCharField(allow_blank=True)
    seed = serializers.IntegerField()
    limit = serializers.IntegerField(allow_null=True)
    config = serializers.DictField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    cancel_requested = serializers.BooleanField()
    progress = _Progress(source="shown_progress")
    history = serializers.ListField(child=serializers.ListField(), source="shown_history",
                                    help_text="[step, U, gold agreement or null]")
    error = StrictCharField(allow_blank=True, help_text="a failure, in one line without server paths")
    error_detail = StrictCharField(allow_blank=True, source="shown_error_detail",
                                   help_text="a failure's traceback: for the dataset's owners, empty for other "
                                             "members")
    label_set = serializers.IntegerField(allow_null=True, source="label_set_id")
    attempts = serializers.IntegerField()
    checkpointed = _Time(allow_null=True)
    created = _Time()
    started = _Time(allow_null=True)
    finished = _Time(allow_null=True)
    parent = serializers.IntegerField(allow_null=True, source="parent_id", help_text="a shard's sharded run")
    batch_range = serializers.ListField(child=serializers.IntegerField(), allow_null=True,
                                        help_text="a shard's batches [first, end)")
    shards = _Shards(source="shown_shards", help_text="a sharded run's shards (empty otherwise)")


class RunCreatedSerializer(RunSerializer):
    runs = serializers.ListField(child=serializers.IntegerField(), help_text="the run of each seed, in order")


class SpreadSerializer(serializers.Serializer):
    mean = serializers.FloatField(allow_null=True)
    min = serializers.FloatField(allow_null=True)
    max = serializers.FloatField(allow_null=True)
    std = serializers.FloatField(allow_null=True, help_text="sample standard deviation over seeds (null for one)")


class MethodSeedSerializer(serializers.Serializer):
    seed = serializers.IntegerField()
    run = serializers.IntegerField()
    label_set = serializers.IntegerField(allow_null=True)
    gold = GoldComparisonSerializer(allow_null=True)
    final_u = serializers.FloatField(allow_null=True, help_text="ICM: the run's final U (mean over its batches)")
    pick = serializers.BooleanField(help_text="ICM: the seed with the highest final U, chosen without gold")


class ConsensusSerializer(serializers.Serializer):
    label_set = serializers.IntegerField(help_text="the consensus label set (an ICM label set like any other)")
    name = StrictCharField()
    seeds = serializers.ListField(child=serializers.IntegerField(), help_text="the seeds that voted")
    agreement = serializers.FloatField(allow_null=True, help_text="the seeds' mean pairwise agreement")
    kappa = serializers.FloatField(allow_null=True, help_text="Fleiss' kappa over the seeds (null where undefined)")
    gold = GoldComparisonSerializer(allow_null=True)


class MethodRowSerializer(serializers.Serializer):
    method = serializers.ChoiceField(choices=RunMethod.choices)
    label = StrictCharField()
    n_seeds = serializers.IntegerField()
    limit = serializers.IntegerField(allow_null=True, help_text="the experiment's limit (null: every example); every "
                                                                "row is of the latest finished run's examples")
    n_examples = serializers.IntegerField(help_text="how many examples the experiment labels")
    accuracy = SpreadSerializer(help_text="accuracy against gold over the seeds")
    majority_accuracy = serializers.FloatField(allow_null=True)
    warnings = serializers.DictField(child=serializers.IntegerField(), help_text="each warning: how many seeds")
    pick = serializers.IntegerField(allow_null=True, help_text="ICM: the label-free pick's seed")
    pick_is_most_accurate = serializers.BooleanField(allow_null=True)
    consensus = ConsensusSerializer(allow_null=True, help_text="ICM: the majority vote of the seeds, once all finished")
    seeds = MethodSeedSerializer(many=True)

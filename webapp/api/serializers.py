"""API shapes. Serializers only validate and present; services do the writes."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework_dataclasses.serializers import DataclassSerializer

from icm_engine.facade import PRESETS, WARNINGS
from webapp.datasets.models import Dataset, Example, Label, LabelSet, LabelSetKind, Membership, Role
from webapp.datasets.permissions import visible_fields
from webapp.review.models import VerdictKind
from webapp.runs.models import RunMethod, RunStatus
from webapp.runs.progress import HELP as RUN_PROGRESS_HELP
from webapp.runs.progress import RunProgress


class ProblemSerializer(serializers.Serializer):
    file = serializers.CharField()
    row = serializers.IntegerField(allow_null=True, help_text="1-based row (JSONL: line) of the file")
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class ImportErrorSerializer(serializers.Serializer):
    """A rejected file: `detail` and `problems`; a form field missing or invalid: `{field: [messages]}`."""

    detail = serializers.CharField(required=False)
    problems = ProblemSerializer(many=True, required=False)


class DatasetSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    my_role = serializers.CharField(read_only=True, allow_null=True)
    example_count = serializers.IntegerField(read_only=True)
    label_set_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Dataset
        fields = [
            "id", "name", "description", "guidelines", "task", "template", "consistency", "source_name", "field_names",
            "owner", "my_role", "example_count", "label_set_count", "created",
        ]
        read_only_fields = fields


class DatasetCreateSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JSON array, JSONL or CSV; the paper's released files as they are")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    task = serializers.ChoiceField(choices=sorted(PRESETS))
    template = serializers.CharField(required=False, allow_blank=True,
                                     help_text="prompt template over the file's fields (default: the preset's)")
    consistency = serializers.CharField(required=False, allow_blank=True,
                                        help_text="none | unique | asymmetric | key:FIELD (default: the preset's)")
    dry_run = serializers.BooleanField(required=False, default=False,
                                       help_text="validate and preview without writing anything")


class DatasetUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    guidelines = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                       help_text="what annotators and reviewers read before they label (plain text)")


class LabelBalanceSerializer(serializers.Serializer):
    true = serializers.IntegerField()
    false = serializers.IntegerField()
    unlabeled = serializers.IntegerField()


class PreviewSerializer(serializers.Serializer):
    filename = serializers.CharField()
    rows = serializers.IntegerField()
    fields = serializers.ListField(child=serializers.CharField())
    groups = serializers.IntegerField()
    task = serializers.CharField()
    template = serializers.CharField()
    consistency = serializers.CharField()
    label_balance = LabelBalanceSerializer()
    sample = serializers.ListField(child=serializers.DictField())


class ExampleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Example
        fields = ["id", "external_id", "position", "group", "consistency_key", "fields"]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        # Annotators label blind: fields that carry labels or answers are not shown to them.
        data["fields"] = visible_fields(self.context.get("role"), data["fields"])
        return data


class LabelSetSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True, default=None)
    annotator = serializers.CharField(source="annotator.username", read_only=True, allow_null=True, default=None)
    run = serializers.IntegerField(source="from_run", read_only=True, allow_null=True)
    n_labels = serializers.IntegerField(read_only=True)
    n_true = serializers.IntegerField(read_only=True)
    n_false = serializers.IntegerField(read_only=True)

    class Meta:
        model = LabelSet
        fields = [
            "id", "dataset", "kind", "name", "version", "source", "source_name", "created_by", "annotator", "run",
            "model", "configuration", "partial", "created", "n_labels", "n_true", "n_false",
        ]
        read_only_fields = fields


class LabelSetImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JSONL or CSV rows of `id` and `label` (optional `score`)")
    kind = serializers.ChoiceField(choices=LabelSetKind.choices)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    model = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class LabelSerializer(serializers.ModelSerializer):
    example = serializers.IntegerField(source="example_id", read_only=True)
    example_id = serializers.CharField(source="example.external_id", read_only=True)
    label = serializers.BooleanField(source="value", read_only=True)

    class Meta:
        model = Label
        fields = ["example", "example_id", "label", "score"]
        read_only_fields = fields


class AgreementSerializer(serializers.Serializer):
    label_set = serializers.IntegerField()
    other = serializers.IntegerField()
    n = serializers.IntegerField(help_text="examples both label sets label")
    agree = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)


class MemberSerializer(serializers.ModelSerializer):
    user = serializers.IntegerField(source="user_id", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["user", "username", "role", "added"]
        read_only_fields = fields


class MemberCreateSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


class IntervalMixin(serializers.Serializer):
    n = serializers.IntegerField()
    ci_low = serializers.FloatField(allow_null=True, help_text="95% interval, lower bound")
    ci_high = serializers.FloatField(allow_null=True, help_text="95% interval, upper bound")


class GoldComparisonSerializer(IntervalMixin):
    """An accuracy against gold with what keeps it honest (icm_engine.metrics.gold_comparison)."""
    correct = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True, min_value=0, max_value=1, help_text="a fraction in [0, 1]")
    balance = serializers.FloatField(allow_null=True, help_text="share of True among the set's labels on these items")
    gold_balance = serializers.FloatField(allow_null=True, help_text="share of True among gold on these items")
    majority_accuracy = serializers.FloatField(
        allow_null=True, help_text="accuracy of always answering gold's majority class on these items")
    p_vs_majority = serializers.FloatField(
        allow_null=True, help_text="one-sided exact binomial test of the accuracy against majority_accuracy")
    auroc = serializers.FloatField(allow_null=True, help_text="AUROC of the set's scores (null without scores)")
    warnings = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(WARNINGS)),
        help_text="; ".join(f"{code}: {text}" for code, text in WARNINGS.items()))


class RunCreateSerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    task = serializers.ChoiceField(choices=sorted(PRESETS), help_text="must be the dataset's task preset")
    method = serializers.ChoiceField(choices=RunMethod.choices, default=RunMethod.ICM)
    backend = serializers.CharField(default="transformers")
    model = serializers.CharField(required=False, allow_blank=True, default="")
    base_url = serializers.URLField(required=False, help_text="openai backend: the server's URL")
    seed = serializers.IntegerField(default=0, min_value=-(2**31), max_value=2**31 - 1,
                                    help_text="one seed (seeds, when given, replaces it)")
    seeds = serializers.ListField(
        child=serializers.IntegerField(min_value=-(2**31), max_value=2**31 - 1), required=False, min_length=1,
        max_length=20,
        help_text="one run per seed (distinct) for the methods whose labels depend on it (ICM, random-label ICL, "
                  "bootstrap, golden ICL), each with its own label set; zero-shot runs once")
    limit = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                     help_text="only the first N examples, in whole consistency groups")
    config = serializers.DictField(
        required=False, default=dict,
        help_text="The run's settings, stored as the run's config. ICM: alpha, initial_temperature, "
                  "final_temperature, cooling, schedule, num_seed, iterations, "
                  "fix_steps, boost, batch_size, mode, readout, context, calibrate, init (paper defaults). "
                  "Baselines: readout, context, calibrate, shots, rounds, batch_size.")
    baselines = serializers.BooleanField(
        default=False, help_text="with method icm: also queue zero-shot, random-label and golden-label ICL runs "
                                "(and the zero-shot likelihood when config.anchor is likelihood)")
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

    class Meta:
        dataclass = RunProgress
        extra_kwargs = {name: {"help_text": text} for name, text in RUN_PROGRESS_HELP.items()
                        if name not in ("gold", "batch_u")}


class RunShardSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    batch_range = serializers.ListField(child=serializers.IntegerField())
    worker = serializers.CharField(allow_blank=True)
    attempts = serializers.IntegerField()
    labeled = serializers.IntegerField()
    step = serializers.IntegerField()
    total_steps = serializers.IntegerField()


class RunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    dataset = serializers.IntegerField()
    method = serializers.CharField()
    task = serializers.CharField()
    backend = serializers.CharField()
    model = serializers.CharField(allow_blank=True)
    seed = serializers.IntegerField()
    limit = serializers.IntegerField(allow_null=True)
    config = serializers.DictField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    cancel_requested = serializers.BooleanField()
    progress = RunProgressSerializer()
    history = serializers.ListField(child=serializers.ListField(), help_text="[step, U, gold agreement or null]")
    error = serializers.CharField(allow_blank=True)
    label_set = serializers.IntegerField(allow_null=True)
    attempts = serializers.IntegerField()
    checkpointed = serializers.DateTimeField(allow_null=True)
    created = serializers.DateTimeField()
    started = serializers.DateTimeField(allow_null=True)
    finished = serializers.DateTimeField(allow_null=True)
    parent = serializers.IntegerField(allow_null=True, help_text="a shard's sharded run")
    batch_range = serializers.ListField(child=serializers.IntegerField(), allow_null=True,
                                        help_text="a shard's batches [first, end)")
    shards = RunShardSerializer(many=True, help_text="a sharded run's shards (empty otherwise)")


class RunCreatedSerializer(RunSerializer):
    runs = serializers.ListField(child=serializers.IntegerField(), help_text="the run of each seed, in order")


class AccuracySerializer(GoldComparisonSerializer):
    label_set = serializers.IntegerField()
    confusion = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()),
                                      help_text="rows: gold True, gold False; columns: label True, label False")


class StratumAccuracySerializer(GoldComparisonSerializer):
    label_set = serializers.IntegerField()
    stratum = serializers.CharField()


class KappaSerializer(IntervalMixin):
    first = serializers.IntegerField()
    second = serializers.IntegerField()
    kappa = serializers.FloatField(allow_null=True)
    undefined = serializers.ChoiceField(
        choices=["one_class", "no_items"], allow_null=True,
        help_text="why kappa is null: one_class (a set gave every item the same label: no variation to agree "
                  "on), no_items (no item labeled by both)")


class McNemarSerializer(serializers.Serializer):
    first = serializers.IntegerField(help_text="the model label set")
    second = serializers.IntegerField(help_text="the human label set")
    n = serializers.IntegerField()
    table = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    only_first_correct = serializers.IntegerField()
    only_second_correct = serializers.IntegerField()
    statistic = serializers.FloatField(required=False)
    p_value = serializers.FloatField(allow_null=True, help_text="exact (binomial) two-sided p-value")


class AgreementReportSerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    gold = serializers.DictField(allow_null=True)
    label_sets = serializers.ListField(child=serializers.DictField())
    stratified_by = serializers.CharField()
    accuracy = AccuracySerializer(many=True)
    by_stratum = StratumAccuracySerializer(many=True)
    kappa = KappaSerializer(many=True)
    mcnemar = McNemarSerializer(many=True)


class VerdictSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    example = serializers.IntegerField(help_text="the example's database id")
    example_id = serializers.CharField(read_only=True)
    verdict = serializers.ChoiceField(choices=VerdictKind.choices)
    note = serializers.CharField(required=False, allow_blank=True, default="")
    user = serializers.CharField(read_only=True)
    created = serializers.DateTimeField(read_only=True)
    retracted = serializers.DateTimeField(read_only=True, allow_null=True)


class GoldCorrectionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    example = serializers.IntegerField(help_text="the example's database id")
    example_id = serializers.CharField()
    old_value = serializers.BooleanField(allow_null=True, help_text="gold before (null: the example had none)")
    new_value = serializers.BooleanField()
    from_set = serializers.IntegerField(help_text="the gold label set corrected")
    from_version = serializers.IntegerField()
    to_set = serializers.IntegerField(help_text="the gold label set the correction made")
    to_version = serializers.IntegerField()
    reason = serializers.CharField(allow_blank=True)
    user = serializers.CharField()
    created = serializers.DateTimeField()


class AnnotationSerializer(serializers.Serializer):
    example = serializers.IntegerField(help_text="the example's database id")
    label = serializers.BooleanField()


class AnnotationNextSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    example = ExampleSerializer(allow_null=True)


class SpotCheckCreateSerializer(serializers.Serializer):
    gold = serializers.IntegerField()
    size = serializers.IntegerField(min_value=1)
    seed = serializers.IntegerField(default=0)


class SpotCheckSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    gold = serializers.IntegerField()
    size = serializers.IntegerField()
    seed = serializers.IntegerField()
    items = serializers.ListField(child=serializers.IntegerField(), help_text="example ids of the sample")
    judgments = serializers.IntegerField()
    disagreements = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True, min_value=0, max_value=1)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)


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


class MethodRowSerializer(serializers.Serializer):
    method = serializers.ChoiceField(choices=RunMethod.choices)
    label = serializers.CharField()
    n_seeds = serializers.IntegerField()
    accuracy = SpreadSerializer(help_text="accuracy against gold over the seeds")
    majority_accuracy = serializers.FloatField(allow_null=True)
    warnings = serializers.DictField(child=serializers.IntegerField(), help_text="each warning: how many seeds")
    pick = serializers.IntegerField(allow_null=True, help_text="ICM: the label-free pick's seed")
    pick_is_most_accurate = serializers.BooleanField(allow_null=True)
    seeds = MethodSeedSerializer(many=True)

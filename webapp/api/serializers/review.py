"""Serializers of the review endpoints: the agreement report, verdicts, gold corrections, annotations, spot-checks."""

from __future__ import annotations

from rest_framework import serializers

from webapp.review.models import VerdictKind

from .common import GoldComparisonSerializer, IntervalMixin, StrictCharField
from .datasets import ExampleSerializer


class AccuracySerializer(GoldComparisonSerializer):
    label_set = serializers.IntegerField()
    confusion = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()),
                                      help_text="rows: gold True, gold False; columns: label True, label False")


class StratumAccuracySerializer(GoldComparisonSerializer):
    label_set = serializers.IntegerField()
    stratum = StrictCharField()


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
    stratified_by = StrictCharField()
    accuracy = AccuracySerializer(many=True)
    by_stratum = StratumAccuracySerializer(many=True)
    kappa = KappaSerializer(many=True)
    mcnemar = McNemarSerializer(many=True)


class VerdictCreateSerializer(serializers.Serializer):
    example = serializers.IntegerField(help_text="the example's database id")
    verdict = serializers.ChoiceField(choices=VerdictKind.choices)
    note = StrictCharField(required=False, allow_blank=True, default="")


class VerdictSerializer(serializers.Serializer):
    """A verdict as it is kept (a review.models.Verdict)."""

    id = serializers.IntegerField()
    example = serializers.IntegerField(source="example_id", help_text="the example's database id")
    example_id = StrictCharField(source="example.external_id")
    verdict = serializers.ChoiceField(choices=VerdictKind.choices)
    note = StrictCharField(allow_blank=True)
    user = StrictCharField(source="user.get_username")
    created = serializers.DateTimeField()
    retracted = serializers.DateTimeField(allow_null=True,
                                          help_text="when it was withdrawn: undone, or replaced (superseded)")
    superseded = serializers.IntegerField(source="superseded_by_id", allow_null=True,
                                          help_text="the id of the same reviewer's verdict that replaced it")


class VerdictExportRowSerializer(serializers.Serializer):
    """One row of the verdicts download (review.exports.verdict_rows)."""

    id = serializers.IntegerField()
    example = StrictCharField(help_text="the example's id in the file")
    verdict = serializers.ChoiceField(choices=VerdictKind.choices)
    note = StrictCharField(allow_blank=True)
    user = StrictCharField()
    created = serializers.DateTimeField()
    retracted = serializers.DateTimeField(allow_null=True)
    labels = serializers.DictField(help_text="the labels shown beside the item when the verdict was given")
    score = serializers.FloatField(allow_null=True)


class GoldCorrectionSerializer(serializers.Serializer):
    """A change to gold as it is kept (a review.models.GoldCorrection)."""

    id = serializers.IntegerField()
    example = serializers.IntegerField(source="example_id", help_text="the example's database id")
    example_id = StrictCharField(source="example.external_id")
    old_value = serializers.BooleanField(allow_null=True, help_text="gold before (null: the example had none)")
    new_value = serializers.BooleanField()
    from_set = serializers.IntegerField(source="from_set_id", help_text="the gold label set corrected")
    from_version = serializers.IntegerField(source="from_set.version")
    to_set = serializers.IntegerField(source="to_set_id", help_text="the gold label set the correction made")
    to_version = serializers.IntegerField(source="to_set.version")
    reason = StrictCharField(allow_blank=True)
    user = StrictCharField(source="user.get_username")
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
    """A spot-check as review.selectors.spot_check_shown gives it: its sample and the gold error rate so far."""

    id = serializers.IntegerField()
    gold = serializers.IntegerField(source="gold_id")
    size = serializers.IntegerField()
    seed = serializers.IntegerField()
    items = serializers.ListField(child=serializers.IntegerField(), source="sample",
                                  help_text="example ids of the sample")
    judgments = serializers.IntegerField(source="result.judgments")
    disagreements = serializers.IntegerField(source="result.disagreements")
    error_rate = serializers.FloatField(source="result.error_rate", allow_null=True, min_value=0, max_value=1)
    ci_low = serializers.FloatField(source="result.ci_low", allow_null=True)
    ci_high = serializers.FloatField(source="result.ci_high", allow_null=True)

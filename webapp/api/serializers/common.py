"""Serializers every part of the API uses: problems in an upload, tokens, an accuracy with its interval."""

from __future__ import annotations

from rest_framework import serializers

from icm_engine.facade import WARNINGS


class StrictCharField(serializers.CharField):
    """A text field that takes text only: DRF's CharField turns a JSON number or boolean into its string, so
    `"guidelines": 0` was stored as "0" where the schema says string."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ProblemSerializer(serializers.Serializer):
    file = StrictCharField()
    row = serializers.IntegerField(allow_null=True, help_text="1-based row (JSONL: line) of the file")
    field = StrictCharField(allow_null=True)
    message = StrictCharField()


class ImportErrorSerializer(serializers.Serializer):
    """A rejected file: `detail` and `problems`; a form field missing or invalid: `{field: [messages]}`."""

    detail = StrictCharField(required=False)
    problems = ProblemSerializer(many=True, required=False)


class TokenRequestSerializer(serializers.Serializer):
    username = StrictCharField()
    password = StrictCharField(style={"input_type": "password"}, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    token = StrictCharField()


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

"""Review decisions, gold spot-checks and the history of gold corrections.

Nothing here is ever overwritten: a reviewer's verdict is a new row (undo retracts it, keeping the
row), two reviewers' verdicts on one item both stay, and a gold correction makes a new gold version
with one GoldCorrection row per changed example.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.datasets.models import Dataset, Example, LabelSet


class VerdictKind(models.TextChoices):
    GOLD_WRONG = "gold_wrong", "Gold wrong"
    ICM_WRONG = "icm_wrong", "ICM wrong"
    BOTH_WRONG = "both_wrong", "Both wrong"
    AMBIGUOUS = "ambiguous", "Ambiguous"
    BAD_ITEM = "bad_item", "Bad item"


class Verdict(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="verdicts")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="verdicts")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="verdicts")
    verdict = models.CharField(max_length=16, choices=VerdictKind.choices)
    note = models.TextField(blank=True)
    # What the reviewer saw: the compared label sets and their labels for this example at the time.
    context = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    # Withdrawn: undone by its reviewer, or replaced by their next verdict on the item (superseded_by).
    retracted = models.DateTimeField(null=True, blank=True)
    superseded_by = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["dataset", "example"], name="verdict_example_idx")]


class SpotCheck(models.Model):
    """A random sample of examples, stratified by gold label, that reviewers label blind."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="spot_checks")
    gold = models.ForeignKey(LabelSet, on_delete=models.CASCADE, related_name="spot_checks")
    size = models.PositiveIntegerField()
    seed = models.IntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]


class SpotCheckItem(models.Model):
    spot_check = models.ForeignKey(SpotCheck, on_delete=models.CASCADE, related_name="items")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="+")
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["spot_check", "position"]
        constraints = [models.UniqueConstraint(fields=["spot_check", "example"], name="spotcheck_unique_example")]


class SpotCheckAnswer(models.Model):
    item = models.ForeignKey(SpotCheckItem, on_delete=models.CASCADE, related_name="answers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    value = models.BooleanField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "user"], name="spotcheck_one_answer_per_user")]


class GoldCorrection(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="gold_corrections")
    from_set = models.ForeignKey(LabelSet, on_delete=models.CASCADE, related_name="+")
    to_set = models.ForeignKey(LabelSet, on_delete=models.CASCADE, related_name="corrections")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="+")
    old_value = models.BooleanField(null=True)
    new_value = models.BooleanField()
    reason = models.TextField(blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

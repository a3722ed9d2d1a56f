"""A Run: one ICM search or baseline over a dataset, executed in the background.

The database row is the truth about a run: its status, its progress snapshot (what the live page
shows), its checkpoint (what a new worker resumes from) and its lease (which execution owns it now).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.datasets.models import Dataset, LabelSet


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class RunMethod(models.TextChoices):
    ICM = "icm", "ICM"
    ZERO_SHOT = "zero-shot", "Zero-shot"
    LIKELIHOOD = "likelihood", "Zero-shot likelihood"
    RANDOM_ICL = "random-icl", "Random-label ICL"
    GOLD_ICL = "gold-icl", "Golden-label ICL"
    BOOTSTRAP = "bootstrap", "Bootstrap"


class Run(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="runs")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    method = models.CharField(max_length=16, choices=RunMethod.choices, default=RunMethod.ICM)
    task = models.CharField(max_length=32)
    backend = models.CharField(max_length=32, default="transformers")
    model = models.CharField(max_length=255, blank=True)
    backend_options = models.JSONField(default=dict, blank=True)
    seed = models.IntegerField(default=0)
    limit = models.PositiveIntegerField(null=True, blank=True)
    # The run's settings, whole (ICMConfig for ICM, BaselineConfig for baselines); the API's `config`.
    config = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    progress = models.JSONField(default=dict, blank=True)
    # Points for the live plot: [iteration step, U, gold agreement or null], thinned to a bounded length.
    history = models.JSONField(default=list, blank=True)
    checkpoint = models.JSONField(null=True, blank=True)
    checkpointed = models.DateTimeField(null=True, blank=True)
    # What every member sees of a failure: one line, without server paths. The traceback goes to the server's
    # log and to the dataset's owners (error_detail).
    error = models.TextField(blank=True)
    error_detail = models.TextField(blank=True, default="")
    cancel_requested = models.BooleanField(default=False)
    # A sharded run: the parent owns the label set and runs nothing itself; each shard is an ordinary run
    # over a contiguous range of the parent's batches, executed by whichever worker claims it.
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="shards")
    shard_count = models.PositiveIntegerField(default=0)
    batch_range = models.JSONField(null=True, blank=True)
    label_set = models.OneToOneField(LabelSet, on_delete=models.SET_NULL, null=True, blank=True, related_name="run")
    # Which execution owns the run now: a fresh token per claim; the heartbeat proves it is alive.
    lease = models.CharField(max_length=64, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    dispatched = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["dataset", "-created"], name="run_dataset_created_idx")]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.method}, {self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def is_sharded(self) -> bool:
        return self.shard_count > 0

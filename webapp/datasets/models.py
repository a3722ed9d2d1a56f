"""Datasets, their examples, and label sets (gold, human, ICM, baseline) with one typed label per example.

Predictions and annotations live side by side as label sets, each with its provenance (who imported
it, which annotator, which run, model and configuration), in the spirit of Label Studio's split of
predictions from annotations. Agreement between label sets is a join on `Label`, not a JSON scan.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from icm_engine.facade import PRESETS


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    REVIEWER = "reviewer", "Reviewer"
    ANNOTATOR = "annotator", "Annotator"
    VIEWER = "viewer", "Viewer"


TASK_CHOICES = [(name, name) for name in PRESETS]


class Dataset(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # What annotators and reviewers read before they label: the owner's instructions, plain text.
    guidelines = models.TextField(blank=True)
    task = models.CharField(max_length=32, choices=TASK_CHOICES)
    # The task as the engine runs it: the prompt template and the label-free consistency rule.
    template = models.TextField()
    consistency = models.CharField(max_length=100, default="none")
    task_config = models.JSONField(default=dict)
    source_name = models.CharField(max_length=255, blank=True)
    field_names = models.JSONField(default=list)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_datasets")
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="datasets")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    added = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "user"], name="membership_unique_user")]
        ordering = ["dataset", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.dataset}"


class Example(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="examples")
    # The file's `id` (as text) or, where the file has none, the row's 0-based position.
    external_id = models.CharField(max_length=255)
    position = models.PositiveIntegerField()
    fields = models.JSONField()
    group = models.CharField(max_length=255)
    # Computed from the example's own text by the task's rule, never from a label.
    consistency_key = models.TextField(null=True, blank=True)
    # Lower-cased field values, so searching examples is one indexed-able text column, not a JSON scan: those
    # every member is shown, and (hidden_text) those that carry labels or answers, which annotators never see
    # (permissions.LABEL_LIKE_FIELDS) and so never search.
    search_text = models.TextField(blank=True)
    hidden_text = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["dataset", "position"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "external_id"], name="example_unique_external_id"),
            models.UniqueConstraint(fields=["dataset", "position"], name="example_unique_position"),
        ]
        indexes = [models.Index(fields=["dataset", "group"], name="example_group_idx")]

    def __str__(self) -> str:
        return f"{self.dataset_id}:{self.external_id}"


class LabelSetKind(models.TextChoices):
    GOLD = "gold", "Gold"
    HUMAN = "human", "Human"
    ICM = "icm", "ICM"
    BASELINE = "baseline", "Baseline"


class LabelSetSource(models.TextChoices):
    FILE = "file", "Dataset file"
    IMPORT = "import", "Imported file"
    RUN = "run", "Run"
    ANNOTATION = "annotation", "Annotation"
    ADJUDICATION = "adjudication", "Adjudicated correction"


class LabelSet(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="label_sets")
    kind = models.CharField(max_length=16, choices=LabelSetKind.choices)
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1)
    source = models.CharField(max_length=16, choices=LabelSetSource.choices)
    source_name = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    model = models.CharField(max_length=255, blank=True)
    configuration = models.JSONField(default=dict, blank=True)
    partial = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    # Bumped by every write to the set's labels after it was created: cached reads of the labels
    # (the review queue's comparison) are keyed on it.
    revision = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["dataset", "kind", "name", "version"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name", "version"], name="labelset_unique_name_version"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version} ({self.kind})"

    @property
    def display_name(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def from_run(self) -> int | None:
        """The id of the run that wrote this set. It is read from the set's configuration (the run's
        provenance), so it outlives the run; `run` is the run itself while it exists."""
        run = self.configuration.get("run") if self.source == LabelSetSource.RUN else None
        return run if isinstance(run, int) and not isinstance(run, bool) else None


class Label(models.Model):
    label_set = models.ForeignKey(LabelSet, on_delete=models.CASCADE, related_name="labels")
    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="labels")
    # Every task here is binary (the claim is true / response 1 is better); True is the positive label.
    value = models.BooleanField()
    score = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["label_set", "example__position"]
        constraints = [
            models.UniqueConstraint(fields=["label_set", "example"], name="label_unique_example"),
        ]
        indexes = [models.Index(fields=["example", "label_set"], name="label_example_idx")]

    def __str__(self) -> str:
        return f"{self.example_id}={self.value}"


class StagedUpload(models.Model):
    """An uploaded dataset file waiting for its owner to confirm the preview; nothing else reads it."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token = models.CharField(max_length=64, unique=True)
    filename = models.CharField(max_length=255)
    data = models.BinaryField()
    options = models.JSONField(default=dict)
    created = models.DateTimeField(auto_now_add=True)


class Invitation(models.Model):
    """A one-time link into a dataset with a role: whoever opens it chooses their username and password
    (webapp.datasets.invitations). It ends when used, revoked, or at `expires`."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=16, choices=Role.choices)
    key = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    accepted = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    @property
    def status(self) -> str:
        if self.accepted:
            return "accepted"
        if self.revoked:
            return "revoked"
        return "expired" if self.expires <= timezone.now() else "open"

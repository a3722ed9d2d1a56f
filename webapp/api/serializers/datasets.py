"""Serializers of the datasets endpoints: datasets, examples, label sets, labels, members."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from icm_engine.facade import PRESETS
from webapp.datasets.models import Dataset, Example, Label, LabelSet, LabelSetKind, Membership, Role
from webapp.datasets.permissions import visible_fields

from .common import StrictCharField


class DatasetSerializer(serializers.ModelSerializer):
    owner = StrictCharField(source="owner.username", read_only=True)
    my_role = StrictCharField(read_only=True, allow_null=True)
    example_count = serializers.IntegerField(read_only=True)
    label_set_count = serializers.IntegerField(read_only=True, allow_null=True,
                                               help_text="null for annotators, who label blind")

    class Meta:
        model = Dataset
        fields = [
            "id", "name", "description", "guidelines", "task", "template", "consistency", "source_name", "field_names",
            "owner", "my_role", "example_count", "label_set_count", "created",
        ]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if data.get("my_role") == "annotator":
            data["label_set_count"] = None
        return data


class DatasetCreateSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="JSON array, JSONL, CSV, Parquet or a zipped `datasets` folder "
                                           "(save_to_disk); the paper's released files as they are")
    name = StrictCharField(max_length=200, required=False, allow_blank=True)
    description = StrictCharField(required=False, allow_blank=True, default="")
    task = serializers.ChoiceField(choices=sorted(PRESETS))
    template = StrictCharField(required=False, allow_blank=True,
                                     help_text="prompt template over the file's fields (default: the preset's)")
    consistency = StrictCharField(required=False, allow_blank=True,
                                        help_text="none | unique | asymmetric | key:FIELD (default: the preset's)")
    dry_run = serializers.BooleanField(required=False, default=False,
                                       help_text="validate and preview without writing anything")
    format = serializers.ChoiceField(choices=["auto", "rows", "label-studio"], required=False, default="auto",
                                     help_text="rows: a table of examples; label-studio: a Label Studio JSON export "
                                               "(its tasks' data the examples, its annotations and predictions "
                                               "label sets); auto: a Label Studio export where the file is one")
    true_choice = StrictCharField(max_length=100, required=False, allow_blank=True, default="",
                                  help_text="Label Studio: the choice that means True (not needed for True/False)")
    from_name = StrictCharField(max_length=100, required=False, allow_blank=True, default="",
                                help_text="Label Studio: the Choices control that holds the label, where the "
                                          "project has several")


class DatasetUpdateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200, required=False)
    description = StrictCharField(required=False, allow_blank=True)
    guidelines = StrictCharField(required=False, allow_blank=True, trim_whitespace=False,
                                       help_text="what annotators and reviewers read before they label (plain text)")

    def validate(self, attrs: dict) -> dict:
        # DRF skips a blank optional field of a form body; a blank name is a mistake, in any body.
        if "name" in self.initial_data and not str(self.initial_data.get("name") or "").strip():
            raise serializers.ValidationError({"name": "A dataset needs a name."})
        return attrs


class LabelBalanceSerializer(serializers.Serializer):
    true = serializers.IntegerField()
    false = serializers.IntegerField()
    unlabeled = serializers.IntegerField()


class PreviewSerializer(serializers.Serializer):
    filename = StrictCharField()
    rows = serializers.IntegerField()
    fields = serializers.ListField(child=StrictCharField())
    groups = serializers.IntegerField()
    task = StrictCharField()
    template = StrictCharField()
    consistency = StrictCharField()
    label_balance = LabelBalanceSerializer()
    sample = serializers.ListField(child=serializers.DictField())
    label_sets = serializers.ListField(child=serializers.DictField(), required=False,
                                       help_text="a Label Studio export's label sets: kind, name, labels, true")


class ExampleSerializer(serializers.ModelSerializer):
    labels = serializers.SerializerMethodField(
        help_text="with ?labelsets=A,B: each named set's label of this example (null: that set leaves it "
                  "unlabeled), keyed by the set's id")

    class Meta:
        model = Example
        fields = ["id", "external_id", "position", "group", "consistency_key", "fields", "labels"]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        # Annotators label blind: fields that carry labels or answers are not shown to them.
        data["fields"] = visible_fields(self.context.get("role"), data["fields"])
        return data

    @extend_schema_field(serializers.DictField(child=serializers.BooleanField(allow_null=True)))
    def get_labels(self, instance) -> dict:
        return {str(ls.pk): getattr(instance, f"label_{ls.pk}", None) for ls in self.context.get("shown", ())}


class LabelSetSerializer(serializers.ModelSerializer):
    created_by = StrictCharField(source="created_by.username", read_only=True, allow_null=True, default=None)
    annotator = StrictCharField(source="annotator.username", read_only=True, allow_null=True, default=None)
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
    file = serializers.FileField(help_text="JSONL, CSV or Parquet rows of `id` and `label` (optional `score`)")
    kind = serializers.ChoiceField(choices=LabelSetKind.choices)
    name = StrictCharField(max_length=200, required=False, allow_blank=True)
    model = StrictCharField(max_length=255, required=False, allow_blank=True, default="")


class LabelStudioImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="a Label Studio JSON export of a project with one two-choice Choices "
                                           "control")
    true_choice = StrictCharField(max_length=100, required=False, allow_blank=True, default="",
                                  help_text="the choice that means True (not needed where the choices are True and "
                                            "False)")
    from_name = StrictCharField(max_length=100, required=False, allow_blank=True, default="",
                                help_text="the Choices control that holds the label, where the project has several")


class LabelSerializer(serializers.ModelSerializer):
    example = serializers.IntegerField(source="example_id", read_only=True)
    example_id = StrictCharField(source="example.external_id", read_only=True)
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
    username = StrictCharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["user", "username", "role", "added"]
        read_only_fields = fields


class MemberCreateSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150)
    role = serializers.ChoiceField(choices=Role.choices)


class MemberUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationCreateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices, help_text="the role the invited person joins with")


class InvitationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    key = StrictCharField(help_text="the secret in the link; POST /api/invitations/{key}/accept/ uses it")
    url = StrictCharField(help_text="the link's path on this server: a page where the invited person "
                                          "chooses a username and password")
    role = serializers.ChoiceField(choices=Role.choices)
    status = serializers.ChoiceField(choices=["open", "accepted", "revoked", "expired"])
    created = serializers.DateTimeField()
    expires = serializers.DateTimeField()
    created_by = StrictCharField(allow_null=True)
    accepted_by = StrictCharField(allow_null=True)
    accepted = serializers.DateTimeField(allow_null=True)
    revoked = serializers.DateTimeField(allow_null=True)


class InvitationAcceptSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=4096, write_only=True, style={"input_type": "password"})

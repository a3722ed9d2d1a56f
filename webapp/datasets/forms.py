from django import forms

from icm_engine.facade import PRESETS

from .models import LabelSetKind, Role


class DatasetUploadForm(forms.Form):
    file = forms.FileField(help_text="JSON array, JSONL, CSV, Parquet, or a zipped Hugging Face datasets folder "
                                     "(save_to_disk). The paper's released files work as they are.")
    name = forms.CharField(max_length=200, required=False, help_text="Defaults to the file's name.")
    task = forms.ChoiceField(choices=[(p, p) for p in PRESETS])
    template = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Prompt template over the file's fields, e.g. Question: {question}\\nClaim: {choice}\\nI think "
                  "this claim is. Leave empty for the preset's.",
    )
    consistency = forms.CharField(required=False, max_length=100,
                                  help_text="none, unique, asymmetric or key:FIELD. Leave empty for the preset's.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    format = forms.ChoiceField(
        choices=[("auto", "Detect"), ("rows", "A table of examples"), ("label-studio", "A Label Studio JSON export")],
        initial="auto", required=False,
        help_text="A Label Studio export's tasks become the examples, its annotations and predictions label sets.")
    true_choice = forms.CharField(max_length=100, required=False,
                                  help_text="Label Studio: the choice that means True (not needed for True/False).")
    from_name = forms.CharField(max_length=100, required=False,
                                help_text="Label Studio: the Choices control that holds the label, if several.")


class LabelSetImportForm(forms.Form):
    file = forms.FileField(help_text="JSONL, CSV or Parquet rows of id and label (optional score).")
    kind = forms.ChoiceField(choices=LabelSetKind.choices, initial=LabelSetKind.HUMAN)
    name = forms.CharField(max_length=200, required=False, help_text="Defaults to the file's name.")
    model = forms.CharField(max_length=255, required=False, help_text="The model that made these labels, if any.")


class LabelStudioImportForm(forms.Form):
    file = forms.FileField(help_text="A Label Studio JSON export: a human label set per annotator, a label set per "
                                     "prediction model version, gold from ground-truth annotations.")
    true_choice = forms.CharField(max_length=100, required=False,
                                  help_text="The choice that means True (not needed for True/False).")
    from_name = forms.CharField(max_length=100, required=False,
                                help_text="The Choices control that holds the label, if the project has several.")


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.VIEWER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)

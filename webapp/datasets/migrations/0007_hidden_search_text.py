"""Annotators search only the text they are shown: the fields that carry labels or answers
(permissions.LABEL_LIKE_FIELDS) move from `search_text` to `hidden_text`, which only label readers search."""

from django.db import migrations, models

# permissions.LABEL_LIKE_FIELDS when this migration was written (a migration does not follow later changes).
HIDDEN = frozenset({"candidate_label", "confidence", "ref_cot", "ref_answer", "is_liberal"})


def _text(fields, hidden):
    return "\n".join(str(v) for k, v in fields.items()
                     if k != "id" and v is not None and (k in HIDDEN) == hidden).lower()


def recompute(apps, schema_editor):
    Example = apps.get_model("datasets", "Example")
    batch = []
    for example in Example.objects.only("pk", "fields").iterator(chunk_size=2000):
        example.search_text, example.hidden_text = _text(example.fields, False), _text(example.fields, True)
        batch.append(example)
        if len(batch) >= 2000:
            Example.objects.bulk_update(batch, ["search_text", "hidden_text"])
            batch = []
    if batch:
        Example.objects.bulk_update(batch, ["search_text", "hidden_text"])


class Migration(migrations.Migration):

    dependencies = [
        ("datasets", "0006_dataset_guidelines"),
    ]

    operations = [
        migrations.AddField(model_name="example", name="hidden_text", field=models.TextField(blank=True, default="")),
        migrations.RunPython(recompute, migrations.RunPython.noop),
    ]

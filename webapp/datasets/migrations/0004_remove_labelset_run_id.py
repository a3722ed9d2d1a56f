"""LabelSet.run_id goes: the run that wrote a set is its `run` relation while the run exists, and its
configuration's "run" (the run's provenance) after. Sets written before the provenance carried the id
get it from the column first."""

from django.db import migrations


def keep_run_in_configuration(apps, schema_editor):
    LabelSet = apps.get_model("datasets", "LabelSet")
    for label_set in LabelSet.objects.filter(run_id__isnull=False).iterator():
        if "run" not in (label_set.configuration or {}):
            label_set.configuration = {**(label_set.configuration or {}), "run": label_set.run_id}
            label_set.save(update_fields=["configuration"])


class Migration(migrations.Migration):

    dependencies = [
        ("datasets", "0003_labelset_revision"),
    ]

    operations = [
        migrations.RunPython(keep_run_in_configuration, migrations.RunPython.noop),
        migrations.RemoveField(model_name="labelset", name="run_id"),
    ]

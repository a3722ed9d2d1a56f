"""Examples' search text leaves out the id: a search for "42" found e142 and e242 through it. Ids are matched
exactly instead (datasets.selectors.examples_of)."""

from django.db import migrations


def recompute(apps, schema_editor):
    Example = apps.get_model("datasets", "Example")
    batch = []
    for example in Example.objects.only("pk", "fields").iterator(chunk_size=2000):
        example.search_text = "\n".join(str(v) for k, v in example.fields.items()
                                        if k != "id" and v is not None).lower()
        batch.append(example)
        if len(batch) >= 2000:
            Example.objects.bulk_update(batch, ["search_text"])
            batch = []
    if batch:
        Example.objects.bulk_update(batch, ["search_text"])


class Migration(migrations.Migration):

    dependencies = [
        ("datasets", "0004_remove_labelset_run_id"),
    ]

    operations = [
        migrations.RunPython(recompute, migrations.RunPython.noop),
    ]

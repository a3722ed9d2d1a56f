from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("datasets", "0005_search_text_without_id"),
    ]

    operations = [
        migrations.AddField(
            model_name="dataset",
            name="guidelines",
            field=models.TextField(blank=True),
        ),
    ]

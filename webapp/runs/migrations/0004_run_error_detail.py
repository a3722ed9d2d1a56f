from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("runs", "0003_likelihood_baseline")]

    operations = [
        migrations.AddField(model_name="run", name="error_detail", field=models.TextField(blank=True, default="")),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0008_live_ci_runs")]

    operations = [
        migrations.AddField(
            model_name="testresult",
            name="attempts",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="testrun",
            name="suite_output",
            field=models.TextField(blank=True, default=""),
        ),
    ]

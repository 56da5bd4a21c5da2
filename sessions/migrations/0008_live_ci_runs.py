import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0007_run_subsets")]

    operations = [
        migrations.AlterField(
            model_name="testrun",
            name="source",
            field=models.CharField(
                choices=[
                    ("upload", "Upload"),
                    ("cli", "Cli"),
                    ("api", "Api"),
                    ("ui", "Ui"),
                    ("schedule", "Schedule"),
                    ("ci", "Ci"),
                ],
                default="upload",
                max_length=20,
            ),
        ),
        migrations.CreateModel(
            name="LiveStream",
            fields=[
                (
                    "run",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="live_stream",
                        serialize=False,
                        to="loop_sessions.testrun",
                    ),
                ),
                (
                    "session_start",
                    models.TextField(
                        blank=True, help_text="The SessionStart line: it tells the parser pytest's version."
                    ),
                ),
                (
                    "pending",
                    models.TextField(
                        blank=True, help_text="Lines of the tests still in flight, fed again before the next batch."
                    ),
                ),
                (
                    "batches",
                    models.PositiveIntegerField(
                        default=0, help_text="Batches stored; a client's batch number makes retries safe."
                    ),
                ),
                ("lines", models.PositiveBigIntegerField(default=0)),
                (
                    "metric_values",
                    models.JSONField(
                        blank=True, default=dict, help_text="Numeric properties seen so far, for the summary."
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
    ]

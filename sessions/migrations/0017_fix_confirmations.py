import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("loop_sessions", "0016_repository_suites"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="FixConfirmation",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("runs_requested", models.PositiveSmallIntegerField()),
                ("requested_at", models.DateTimeField(auto_now_add=True)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("running", "Running"),
                            ("verified", "Verified"),
                            ("did_not_fix", "Did not fix"),
                            ("incomplete", "Incomplete"),
                        ],
                        default="running",
                        max_length=20,
                    ),
                ),
                ("verdict", models.CharField(blank=True, max_length=500)),
                ("judged_at", models.DateTimeField(blank=True, null=True)),
                (
                    "deployment",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="loop_sessions.deployment",
                    ),
                ),
                (
                    "fix",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="confirmations",
                        to="loop_sessions.fix",
                    ),
                ),
                (
                    "requested_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"ordering": ["-requested_at", "-id"]},
        ),
        migrations.CreateModel(
            name="FixConfirmationRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.PositiveSmallIntegerField()),
                (
                    "confirmation",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="runs",
                        to="loop_sessions.fixconfirmation",
                    ),
                ),
                (
                    "run",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="fix_confirmation",
                        to="loop_sessions.testrun",
                    ),
                ),
            ],
            options={"ordering": ["confirmation", "number"]},
        ),
        # The key-metrics table's "passed of executed" leaves quarantined results out, as the pass rate does.
        migrations.AddField(
            model_name="testrun",
            name="quarantined_passed",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="testrun",
            name="quarantined_executed",
            field=models.PositiveIntegerField(default=0),
        ),
    ]

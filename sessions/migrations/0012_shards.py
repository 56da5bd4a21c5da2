import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0011_signature_keys_owners")]

    operations = [
        migrations.AddField(
            model_name="environment",
            name="default_shards",
            field=models.PositiveSmallIntegerField(
                blank=True,
                default=1,
                help_text="Shards a test run is split into unless the request names a number (1 to 32).",
            ),
        ),
        migrations.AddField(
            model_name="environment",
            name="shard_together",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text='Test files (globs) whose tests stay in one shard, e.g. ["tests/test_checkout.py", '
                '"tests/flows/*"].',
            ),
        ),
        migrations.AddField(
            model_name="testrun",
            name="shards_requested",
            field=models.PositiveSmallIntegerField(default=1),
        ),
        migrations.CreateModel(
            name="RunShard",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("index", models.PositiveSmallIntegerField(help_text="1 to the run's number of shards.")),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("finished", "Finished"),
                            ("failed", "Failed"),
                            ("error", "Error"),
                            ("timed_out", "Timed Out"),
                            ("cancelled", "Cancelled"),
                            ("lost", "Lost"),
                        ],
                        default="queued",
                        max_length=20,
                    ),
                ),
                (
                    "attempt",
                    models.PositiveSmallIntegerField(default=1, help_text="2 once retried after a lost worker."),
                ),
                ("nodeids", models.JSONField(blank=True, default=list, help_text="The test node ids this shard runs.")),
                ("tests", models.PositiveIntegerField(default=0, help_text="How many node ids it was given.")),
                (
                    "planned_s",
                    models.FloatField(blank=True, help_text="Expected test time, from recorded durations.", null=True),
                ),
                (
                    "worker",
                    models.CharField(
                        blank=True, help_text="The Celery worker that runs it (node name).", max_length=255
                    ),
                ),
                (
                    "lost_worker",
                    models.CharField(
                        blank=True, help_text="The worker it was lost on, avoided on retry.", max_length=255
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("heartbeat_at", models.DateTimeField(blank=True, null=True)),
                ("duration_s", models.FloatField(blank=True, null=True)),
                ("exit_code", models.IntegerField(blank=True, null=True)),
                ("log_tail", models.TextField(blank=True)),
                ("current_test", models.CharField(blank=True, max_length=1000)),
                ("total", models.PositiveIntegerField(default=0)),
                ("passed", models.PositiveIntegerField(default=0)),
                ("failed", models.PositiveIntegerField(default=0)),
                ("errors", models.PositiveIntegerField(default=0)),
                ("skipped", models.PositiveIntegerField(default=0)),
                ("xfailed", models.PositiveIntegerField(default=0)),
                ("xpassed", models.PositiveIntegerField(default=0)),
                ("tests_duration_s", models.FloatField(default=0.0)),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="shards",
                        to="loop_sessions.testrun",
                    ),
                ),
            ],
            options={
                "ordering": ["run", "index"],
                "indexes": [models.Index(fields=["status", "heartbeat_at"], name="shard_status_heartbeat")],
                "constraints": [models.UniqueConstraint(fields=("run", "index"), name="shard_unique_index")],
            },
        ),
    ]

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0018_ingest_speed")]

    operations = [
        migrations.CreateModel(
            name="StoredLog",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "attempt",
                    models.PositiveSmallIntegerField(
                        default=1, help_text="The shard's attempt (1 for runs, deployments)."
                    ),
                ),
                (
                    "worker",
                    models.CharField(
                        blank=True, help_text="The worker (node or host) that wrote the log.", max_length=255
                    ),
                ),
                (
                    "data",
                    models.BinaryField(
                        help_text="The log as gzip (at most LOOPDASH_STORED_LOG_MAX_BYTES before compression)."
                    ),
                ),
                ("size", models.PositiveBigIntegerField(default=0, help_text="Bytes of the log file on the worker.")),
                (
                    "cut_bytes",
                    models.PositiveBigIntegerField(
                        default=0, help_text="Bytes left out of the middle (0: kept whole)."
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "deployment",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="stored_logs",
                        to="loop_sessions.deployment",
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="stored_logs",
                        to="loop_sessions.testrun",
                    ),
                ),
                (
                    "shard",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="stored_logs",
                        to="loop_sessions.runshard",
                    ),
                ),
            ],
            options={
                "ordering": ["pk"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("run__isnull", False), ("deployment__isnull", True)),
                            models.Q(("deployment__isnull", False), ("run__isnull", True), ("shard__isnull", True)),
                            _connector="OR",
                        ),
                        name="storedlog_one_owner",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("run__isnull", False), ("shard__isnull", True)),
                        fields=("run",),
                        name="storedlog_one_per_run",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("shard__isnull", False)),
                        fields=("shard", "attempt"),
                        name="storedlog_one_per_shard_attempt",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("deployment__isnull", False)),
                        fields=("deployment",),
                        name="storedlog_one_per_deployment",
                    ),
                ],
            },
        ),
    ]

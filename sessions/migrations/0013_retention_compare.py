import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0012_shards")]

    operations = [
        migrations.AddField(
            model_name="environment",
            name="detail_days",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Keep results' full detail this many days. Empty: the server's default.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="environment",
            name="detail_cycles",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Keep full detail for the latest this many cycles of each session. Empty: the server's default.",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="testrun",
            name="detail_pruned_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="RunComparison",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("counts", models.JSONField(default=dict)),
                ("computed_at", models.DateTimeField(auto_now_add=True)),
                (
                    "base",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="loop_sessions.testrun"
                    ),
                ),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="loop_sessions.testrun"
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("run", "base"), name="comparison_unique_pair")],
            },
        ),
        migrations.CreateModel(
            name="ComparisonEntry",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("kind", models.CharField(max_length=20)),
                ("case_id", models.BigIntegerField()),
                ("delta", models.FloatField(blank=True, null=True)),
                (
                    "comparison",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="entries",
                        to="loop_sessions.runcomparison",
                    ),
                ),
            ],
            options={
                "indexes": [models.Index(fields=["comparison", "kind", "case_id"], name="cmpentry_list")],
            },
        ),
    ]

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from sessions.services.rekey import rekey_signatures


def rekey(apps, schema_editor):
    """Signatures keyed by the failure's site too: see sessions/services/rekey.py and docs/TRIAGE.md."""
    rekey_signatures(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("loop_sessions", "0010_quarantine_webhooks"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="failuresignature",
            name="assignee",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="assigned_signatures",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.CreateModel(
            name="SignatureComment",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("body", models.TextField(max_length=10000)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "author",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "signature",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="comments",
                        to="loop_sessions.failuresignature",
                    ),
                ),
            ],
            options={
                "ordering": ["created_at", "id"],
                "indexes": [models.Index(fields=["signature", "created_at"], name="sigcomment_signature_at")],
            },
        ),
        migrations.RunPython(rekey, migrations.RunPython.noop),
    ]

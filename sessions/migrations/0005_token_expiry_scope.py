"""API tokens get an optional expiry and a scope (read, upload, trigger).

Every existing token gets all three scopes and no expiry: it keeps working as before.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("loop_sessions", "0004_case_fks_unchecked"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="scope_read",
            field=models.BooleanField(default=True, help_text="GET runs and results.", verbose_name="read"),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="scope_upload",
            field=models.BooleanField(default=True, help_text="Upload result files.", verbose_name="upload"),
        ),
        migrations.AddField(
            model_name="apitoken",
            name="scope_trigger",
            field=models.BooleanField(default=True, help_text="Trigger deploys and test runs.", verbose_name="trigger"),
        ),
    ]

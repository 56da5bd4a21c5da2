from django.db import migrations, models

import sessions.models.loop


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0015_run_page")]

    operations = [
        migrations.AddField(
            model_name="environment",
            name="repository",
            field=models.CharField(
                blank=True,
                help_text="Git URL or path of the repository holding the suite. Credentials come from the worker's "
                "environment (SSH agent, credential helper); a password in the URL is masked everywhere.",
                max_length=500,
            ),
        ),
        migrations.AddField(
            model_name="environment",
            name="setup_command",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text='Argument list run in the checkout before the tests, e.g. ["{python}", "-m", "pip", '
                '"install", "-r", "requirements.txt", "--target", "{setup_dir}"]. Empty: no setup.',
            ),
        ),
        migrations.AddField(
            model_name="environment",
            name="setup_cache_files",
            field=models.JSONField(
                blank=True,
                default=sessions.models.loop.default_setup_cache_files,
                help_text="Files of the checkout whose content decides whether the setup's result ({setup_dir}) "
                "is reused.",
            ),
        ),
        migrations.AddField(
            model_name="testrun",
            name="revision",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name="testrun",
            name="commit",
            field=models.CharField(blank=True, max_length=64),
        ),
    ]

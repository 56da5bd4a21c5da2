from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0014_setup_environments")]

    operations = [
        migrations.AddField(
            model_name="testrun",
            name="live_figures",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]

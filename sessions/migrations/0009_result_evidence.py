from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0008_live_ci_runs")]

    operations = []

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0014_setup_environments")]

    operations = []

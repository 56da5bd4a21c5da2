from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0007_run_subsets")]

    operations = []

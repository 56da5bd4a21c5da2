from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0009_result_evidence")]

    operations = []

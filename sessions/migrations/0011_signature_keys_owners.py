from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0010_quarantine_webhooks")]

    operations = []

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0011_signature_keys_owners")]

    operations = []

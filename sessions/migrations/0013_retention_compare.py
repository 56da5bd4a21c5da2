from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0012_shards")]

    operations = []

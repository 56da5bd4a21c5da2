"""Ingestion speed (issue #17): fewer index entries per stored test case and result.

Measured in docs/PERFORMANCE.md (Ingestion, Round 3), by COPYing the same 100,000 cases and results
into copies of the tables with the old and the new indexes:

- ``case_area`` and ``case_flaky_run`` replace the full indexes Django made for the two foreign keys:
  partial (``IS NOT NULL``), so a new test case without a business area, never caught flaky, adds no
  entry to them (0.1 s of server CPU per 100,000 new cases). Every query by those keys names a value
  (``area_id = …``, ``flaky_run_id IN …``), which the partial indexes answer.
- ``result_signature_run (signature_id, run_id)`` goes: ``result_signature_recent (signature_id,
  run_id, id) WHERE signature_id IS NOT NULL`` (migration 0003, on both databases) answers everything it
  did, and the full index held an entry for every passed result too.
- ``result_run_outcome (run_id, outcome, id)`` becomes partial, ``WHERE outcome <> 'passed'``: the run
  page's "passed" filter walks ``result_run_id (run_id, id)`` instead, whose rows are then mostly
  passed. Together with the previous one, 0.18 s of server CPU less per 100,000 results.

Plain (not concurrent) index builds: the partial indexes read the tables once, a few seconds for a
million results, during which writes to the table wait.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("loop_sessions", "0017_fix_confirmations")]

    operations = [
        migrations.RemoveIndex(model_name="testresult", name="result_run_outcome"),
        migrations.RemoveIndex(model_name="testresult", name="result_signature_run"),
        migrations.AlterField(
            model_name="testcase",
            name="area",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="cases",
                to="loop_sessions.businessarea",
            ),
        ),
        migrations.AlterField(
            model_name="testcase",
            name="flaky_run",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="loop_sessions.testrun",
            ),
        ),
        migrations.AddIndex(
            model_name="testcase",
            index=models.Index(condition=models.Q(("area__isnull", False)), fields=["area"], name="case_area"),
        ),
        migrations.AddIndex(
            model_name="testcase",
            index=models.Index(
                condition=models.Q(("flaky_run__isnull", False)), fields=["flaky_run"], name="case_flaky_run"
            ),
        ),
        migrations.AddIndex(
            model_name="testresult",
            index=models.Index(
                condition=models.Q(("outcome", "passed"), _negated=True),
                fields=["run", "outcome", "id"],
                name="result_run_outcome",
            ),
        ),
    ]

"""Scale: indexes that keep pages flat at 1,000,000 results, and the signature counters' pre-aggregates.

Measured in docs/PERFORMANCE.md (## Pages and load), EXPLAIN ANALYZE in bench/out/pages-explain.txt:

- ``result_run_id`` (run_id, id): the run page's first page of results (``WHERE run_id = ? ORDER BY id
  LIMIT 51``) and the priority and text filters. Without it PostgreSQL walks the primary key from the
  first row of the table and filters on run_id: 936,957 rows read for a run stored last, 150-200 ms.
- ``result_run_suspect`` (run_id, id) WHERE suspect: the run page's suspect list, the same walk; tiny.
- ``result_signature_recent`` (signature_id, run_id, id) WHERE signature_id IS NOT NULL: a signature's
  latest samples (``ORDER BY run_id DESC, id DESC LIMIT 10``) without sorting all of the latest run's
  results of the signature (8,903 rows sorted for 10: 52 ms); partial, so passed results cost nothing.
- ``loop_sessions_signature_case`` / ``loop_sessions_signature_module``: the distinct tests and modules
  each signature has hit, kept by ``sessions.services.aggregates`` so that a finished run updates its
  signatures' counters from its own rows instead of counting all their history again.

The indexes are plain SQL, not ``Meta.indexes``: models.py belongs to other work, and SQL leaves the
migration state (and ``makemigrations``) untouched. On PostgreSQL they are built CONCURRENTLY, so that a
deploy does not block ingestion while a large results table is indexed (the migration is not atomic).
"""

from django.db import migrations

RESULTS = "loop_sessions_testresult"
INDEXES = (
    ("result_run_id", f"{RESULTS} (run_id, id)"),
    ("result_run_suspect", f"{RESULTS} (run_id, id) WHERE suspect"),
    ("result_signature_recent", f"{RESULTS} (signature_id, run_id, id) WHERE signature_id IS NOT NULL"),
)
TABLES = (
    ("loop_sessions_signature_case", "signature_id bigint NOT NULL, case_id bigint NOT NULL, PRIMARY KEY (signature_id, case_id)"),
    ("loop_sessions_signature_module", "signature_id bigint NOT NULL, module text NOT NULL, PRIMARY KEY (signature_id, module)"),
)
# No foreign keys: Django's flush (every transactional test) TRUNCATEs the tables it knows, and PostgreSQL
# refuses to truncate a table that another one references. Triggers do what ON DELETE CASCADE would do
# instead, for DELETE and for TRUNCATE alike, so the pairs always go with their signature or test case.
PG_TRIGGERS = """
CREATE INDEX IF NOT EXISTS signature_case_case ON loop_sessions_signature_case (case_id);
CREATE OR REPLACE FUNCTION loop_sessions_pairs_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN TRUNCATE loop_sessions_signature_case, loop_sessions_signature_module; RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION loop_sessions_pairs_delete_signatures() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM loop_sessions_signature_case WHERE signature_id IN (SELECT id FROM gone);
  DELETE FROM loop_sessions_signature_module WHERE signature_id IN (SELECT id FROM gone);
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION loop_sessions_pairs_delete_cases() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN DELETE FROM loop_sessions_signature_case WHERE case_id IN (SELECT id FROM gone); RETURN NULL; END $$;
DROP TRIGGER IF EXISTS pairs_truncate ON loop_sessions_testcase;
CREATE TRIGGER pairs_truncate AFTER TRUNCATE ON loop_sessions_testcase
  FOR EACH STATEMENT EXECUTE FUNCTION loop_sessions_pairs_truncate();
DROP TRIGGER IF EXISTS pairs_truncate ON loop_sessions_failuresignature;
CREATE TRIGGER pairs_truncate AFTER TRUNCATE ON loop_sessions_failuresignature
  FOR EACH STATEMENT EXECUTE FUNCTION loop_sessions_pairs_truncate();
DROP TRIGGER IF EXISTS pairs_delete ON loop_sessions_failuresignature;
CREATE TRIGGER pairs_delete AFTER DELETE ON loop_sessions_failuresignature REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION loop_sessions_pairs_delete_signatures();
DROP TRIGGER IF EXISTS pairs_delete ON loop_sessions_testcase;
CREATE TRIGGER pairs_delete AFTER DELETE ON loop_sessions_testcase REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION loop_sessions_pairs_delete_cases();
"""
PG_DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS pairs_truncate ON loop_sessions_testcase;
DROP TRIGGER IF EXISTS pairs_truncate ON loop_sessions_failuresignature;
DROP TRIGGER IF EXISTS pairs_delete ON loop_sessions_failuresignature;
DROP TRIGGER IF EXISTS pairs_delete ON loop_sessions_testcase;
DROP FUNCTION IF EXISTS loop_sessions_pairs_truncate();
DROP FUNCTION IF EXISTS loop_sessions_pairs_delete_signatures();
DROP FUNCTION IF EXISTS loop_sessions_pairs_delete_cases();
"""
SQLITE_TRIGGERS = (
    "CREATE INDEX IF NOT EXISTS signature_case_case ON loop_sessions_signature_case (case_id)",
    "CREATE TRIGGER IF NOT EXISTS pairs_delete_signature AFTER DELETE ON loop_sessions_failuresignature BEGIN "
    "DELETE FROM loop_sessions_signature_case WHERE signature_id = OLD.id; "
    "DELETE FROM loop_sessions_signature_module WHERE signature_id = OLD.id; END",
    "CREATE TRIGGER IF NOT EXISTS pairs_delete_case AFTER DELETE ON loop_sessions_testcase BEGIN "
    "DELETE FROM loop_sessions_signature_case WHERE case_id = OLD.id; END",
)
SQLITE_DROP_TRIGGERS = ("DROP TRIGGER IF EXISTS pairs_delete_signature", "DROP TRIGGER IF EXISTS pairs_delete_case")


def forwards(apps, schema_editor):  # noqa: ANN001, ANN201
    postgres = schema_editor.connection.vendor == "postgresql"
    for name, definition in INDEXES:
        if postgres:
            # A CONCURRENTLY build that failed leaves an invalid index behind: drop it and build again.
            with schema_editor.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE c.relname = %s AND NOT i.indisvalid",
                    [name],
                )
                if cursor.fetchone():
                    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
            schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {definition}")
        else:
            schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")
    for name, columns in TABLES:
        schema_editor.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
    if postgres:
        schema_editor.execute(PG_TRIGGERS)
    else:
        for statement in SQLITE_TRIGGERS:
            schema_editor.execute(statement)
    # Fill the pre-aggregates from the results already stored (nothing to do on a new database). Plain
    # SQL, frozen here: a migration must not depend on application code that may change later.
    schema_editor.execute(
        f"INSERT INTO loop_sessions_signature_case (signature_id, case_id) "
        f"SELECT DISTINCT signature_id, case_id FROM {RESULTS} WHERE signature_id IS NOT NULL "
        "ON CONFLICT DO NOTHING"
    )
    schema_editor.execute(
        f"INSERT INTO loop_sessions_signature_module (signature_id, module) "
        f"SELECT DISTINCT r.signature_id, c.module FROM {RESULTS} r "
        "JOIN loop_sessions_testcase c ON c.id = r.case_id WHERE r.signature_id IS NOT NULL "
        "ON CONFLICT DO NOTHING"
    )


def backwards(apps, schema_editor):  # noqa: ANN001, ANN201
    postgres = schema_editor.connection.vendor == "postgresql"
    concurrently = "CONCURRENTLY " if postgres else ""
    if postgres:
        schema_editor.execute(PG_DROP_TRIGGERS)
    else:
        for statement in SQLITE_DROP_TRIGGERS:
            schema_editor.execute(statement)
    for name, _columns in TABLES:
        schema_editor.execute(f"DROP TABLE IF EXISTS {name}")
    for name, _definition in INDEXES:
        schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction

    dependencies = [
        ("loop_sessions", "0002_triage"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]

#!/usr/bin/env bash
# Run the whole suite. Uses PostgreSQL and Redis on 127.0.0.1 when they answer,
# else SQLite and the filesystem broker. With CI=true a missing server is a failure:
# CI must prove the real stack, never quietly fall back.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PG_URL=${LOOPDASH_TEST_DATABASE_URL:-postgres://root@127.0.0.1:5432/postgres}
REDIS_URL=${LOOPDASH_TEST_BROKER_URL:-redis://127.0.0.1:6379/15}

if [ "${LOOPDASH_TEST_BACKEND:-}" = "sqlite" ]; then
  # The second leg: the ORM storage path on SQLite with the filesystem broker (no server at all).
  unset DATABASE_URL CELERY_BROKER_URL
  export LOOPDASH_REQUIRE_SERVICES=false
  export LOOPDASH_VAR_DIR=${LOOPDASH_VAR_DIR:-$PWD/var/test-sqlite}
  echo "tests: SQLite and the filesystem broker (LOOPDASH_TEST_BACKEND=sqlite)"
  exec $PY -m pytest "$@"
fi

pg_ok=0; redis_ok=0
$PY - "$PG_URL" <<'PYEOF' && pg_ok=1 || true
import sys, psycopg
psycopg.connect(sys.argv[1].replace("postgres://", "postgresql://"), connect_timeout=3).close()
PYEOF
$PY - "$REDIS_URL" <<'PYEOF' && redis_ok=1 || true
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=3).ping()
PYEOF

if [ "${CI:-}" = "true" ] && { [ $pg_ok = 0 ] || [ $redis_ok = 0 ]; }; then
  [ $pg_ok = 0 ] && echo "CI=true but PostgreSQL does not answer at $PG_URL" >&2
  [ $redis_ok = 0 ] && echo "CI=true but Redis does not answer at $REDIS_URL" >&2
  exit 1
fi
if [ $pg_ok = 1 ]; then export DATABASE_URL=$PG_URL; echo "tests: PostgreSQL at $PG_URL"; else
  unset DATABASE_URL; echo "tests: PostgreSQL not reachable, using SQLite"; fi
if [ $redis_ok = 1 ]; then export CELERY_BROKER_URL=$REDIS_URL; echo "tests: Redis at $REDIS_URL"; else
  unset CELERY_BROKER_URL; echo "tests: Redis not reachable, using the filesystem broker"; fi
export LOOPDASH_REQUIRE_SERVICES=${CI:-false}
export LOOPDASH_VAR_DIR=${LOOPDASH_VAR_DIR:-$PWD/var/test}
exec $PY -m pytest "$@"

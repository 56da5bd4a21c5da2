#!/usr/bin/env bash
# Serve the demo on the embedded default: SQLite, a real Celery worker, beat apart from it,
# on kombu's filesystem broker, and the demo data. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DJANGO_DEBUG=${DJANGO_DEBUG:-}
$PY manage.py migrate --noinput
$PY manage.py load_demo
mkdir -p var/log
$PY -m celery -A loopdash worker --loglevel=INFO --concurrency=2 >var/log/worker.log 2>&1 &
worker=$!
# Beat (the reaper of lost work) runs apart from the worker: a worker that dies must not take the
# process that notices its death with it.
$PY -m celery -A loopdash beat --loglevel=INFO --schedule=var/celerybeat-schedule >var/log/beat.log 2>&1 &
beat=$!
trap 'kill $worker $beat 2>/dev/null; wait $worker $beat 2>/dev/null; $PY examples/staging/deploy.py --stop >/dev/null 2>&1 || true' EXIT INT TERM
echo "Celery worker started (pid $worker, log: var/log/worker.log); beat (pid $beat, log: var/log/beat.log)"
echo
echo "loopdash is serving on http://127.0.0.1:8000/  (Ctrl-C to stop)"
$PY manage.py demo_logins
DEBUG=${DEBUG:-1} $PY manage.py runserver 127.0.0.1:8000 --noreload

#!/usr/bin/env bash
# Serve the demo on the embedded default: SQLite, a real Celery worker, beat apart from it,
# on kombu's filesystem broker, and the demo data. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export DJANGO_DEBUG=${DJANGO_DEBUG:-}
# The port served: `make run PORT=8001`. Links the CLI prints follow it: LOOPDASH_BASE_URL when set, else
# the address written to var/served-url while this script serves (loopdash/settings.py reads it).
PORT=${PORT:-8000}
VAR=${LOOPDASH_VAR_DIR:-var}
export LOOPDASH_BASE_URL=${LOOPDASH_BASE_URL:-http://127.0.0.1:$PORT}
$PY manage.py migrate --noinput
$PY manage.py load_demo
mkdir -p var/log
# Hashed, gzip- and brotli-compressed static files for WhiteNoise (far-future cacheable). Compressing
# plotly.js takes tens of seconds, so only when a static file or the installed packages changed.
manifest=$VAR/staticfiles/staticfiles.json
if [ ! -f "$manifest" ] || [ -n "$(find static .venv/.installed -newer "$manifest" -print -quit 2>/dev/null)" ]; then
  echo "Collecting static files (hashed, gzip and brotli; once per change of them, about 30 s)"
  $PY manage.py collectstatic --noinput -v 0
fi
worker= beat= staging=
# On exit: the worker and beat, then the example target. Without `set +e` the first failing command
# (kill of a worker that Ctrl-C already ended) would end the trap before the target is stopped. A
# deploy still starting is waited for (at most its 15 s timeout) before the stop, which would otherwise
# find nothing to stop yet and leave the target running.
cleanup() {
  set +e
  trap - EXIT INT TERM
  for pid in $worker $beat; do kill "$pid" 2>/dev/null; done
  for pid in $worker $beat $staging; do wait "$pid" 2>/dev/null; done
  $PY examples/staging/deploy.py --stop >/dev/null 2>&1
  rm -f "$VAR/served-url"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# The demo says its latest deployment succeeded (r7 after a fresh load): start the example target at that
# revision, so "Run tests" reaches what the page shows as deployed. In the background (a deploy waits up
# to 15 s for the target's /health), so the dashboard is up at once; a run that starts before the target
# listens fails the environment's health check and ends at once, excluded, "target unreachable".
# The target's pid file, log and installed release live where the demo's own deploys (run by the worker
# in a checkout of the demo repository, removed when the deploy ends) keep them too: one state folder.
mkdir -p "$VAR/staging"
export STAGING_STATE_DIR=$(cd "$VAR/staging" && pwd)
read -r revision commit < <($PY manage.py shell --no-startup -v 0 -c \
  "from sessions.demo.loader import deployed_revision; print(*(deployed_revision() or ('', '')))" 2>/dev/null | tail -n 1) || true
if [ -n "${revision:-}" ]; then
  $PY examples/staging/deploy.py --revision "$revision" ${commit:+--commit "$commit"} >var/log/staging.log 2>&1 &
  staging=$!
fi
$PY -m celery -A loopdash worker --loglevel=INFO --concurrency=2 >var/log/worker.log 2>&1 &
worker=$!
# Beat (the reaper of lost work) runs apart from the worker: a worker that dies must not take the
# process that notices its death with it.
$PY -m celery -A loopdash beat --loglevel=INFO --schedule=var/celerybeat-schedule >var/log/beat.log 2>&1 &
beat=$!
echo "Celery worker started (pid $worker, log: var/log/worker.log); beat (pid $beat, log: var/log/beat.log)"
if [ -n "$staging" ]; then
  echo "Example target: starting revision $revision on ws://127.0.0.1:8765 (log: var/log/staging.log); stopped on exit"
else
  echo "Example target: not started (the demo has no succeeded deployment); deploy one from the session page"
fi
echo
echo "$LOOPDASH_BASE_URL" >"$VAR/served-url"
echo "loopdash is serving on http://127.0.0.1:$PORT/  (Ctrl-C to stop)"
$PY manage.py demo_logins
DEBUG=${DEBUG:-0} $PY manage.py runserver "127.0.0.1:$PORT" --noreload

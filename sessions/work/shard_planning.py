"""A sharded run's first step, on a worker: which tests, split how, then one task per shard.

``execute_test_run`` is what ``tasks.run_tests`` calls. A run with one shard asked for is the plain
``run_execution`` path, unchanged. Otherwise a worker claims the run, runs the health check once for
the whole run, and works out the run's tests:

- **a rerun or a subset by stored ids** (scope failed / selected): the node ids of its stored
  selection (TestCase rows);
- **the full suite or a marker / keyword subset**: collected on the worker, by the environment's own
  command with ``--collect-only -p loopdash_select`` (the same argument-list path, the marker or
  keyword as one argument); the plugin writes the collected node ids to a JSON file. We collect
  rather than reuse the last run's ids plus a catch-all shard: collection is exact for this revision
  (new, renamed and removed tests included), costs about a second on the example suite, and every
  test then lands in exactly one shard. A module that fails to collect goes to one shard whole, where
  its error is reported as it would be unsharded.

The tests are split (``shard_split``) by their recorded durations, the ``RunShard`` rows are written
and their tasks sent when that transaction commits. The run stays ``running``; its shards beat on
it, and the last shard to end writes its summary. The split, the selection lists and the plugin
travel through the database, the broker and the worker's own code: no shared disk.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import traceback

from celery import current_app
from django.db import transaction
from django.utils import timezone

from ..models import RunShard, TestCase, TestResult, TestRun, WorkStatus, identity_hash
from . import runners, shard_split, stored_logs
from .run_execution import RunExecution, _deployment_ready, claim_run, execute_run
from .shard_end import RUN_SHARD_TASK, complete_if_done

log = logging.getLogger(__name__)

COLLECT_FILE = "collected.json"
HISTORY_RUNS = 3  # the newest finished runs of the environment whose durations plan a split


def execute_test_run(pk: int) -> None:
    """Run a queued test run: in one process (one shard), or planned and sent out as shards."""
    run = TestRun.objects.select_related("environment", "deployment", "rerun_of").filter(pk=pk).first()
    if run is None or run.status != WorkStatus.QUEUED:
        return
    if run.shards_requested <= 1:
        execute_run(pk)
        return
    if not _deployment_ready(run) or not claim_run(pk):
        return
    run.refresh_from_db()
    ShardPlanning(run).execute()


def recorded_durations(run: TestRun, nodeids: list[str]) -> dict[str, float]:
    """Each test's duration in the newest of the environment's last finished runs that ran it."""
    history = list(
        TestRun.objects.filter(environment=run.environment, status=WorkStatus.FINISHED, summary_written=True)
        .exclude(pk=run.pk)
        .order_by("-finished_at")
        .values_list("pk", flat=True)[:HISTORY_RUNS]
    )
    if not history:
        return {}
    by_hash = {identity_hash(n): n for n in nodeids}
    cases: dict[int, str] = {}
    keys = list(by_hash)
    for start in range(0, len(keys), 5000):
        rows = TestCase.objects.filter(environment=run.environment, nodeid_hash__in=keys[start : start + 5000])
        cases.update({pk: by_hash[key] for pk, key in rows.values_list("pk", "nodeid_hash")})
    rank = {pk: i for i, pk in enumerate(history)}  # 0: newest
    found: dict[str, tuple[int, float]] = {}
    ids = list(cases)
    for start in range(0, len(ids), 5000):
        rows = TestResult.objects.filter(
            run_id__in=history, case_id__in=ids[start : start + 5000], duration__isnull=False
        ).values_list("case_id", "run_id", "duration")
        for case_id, run_id, duration in rows:
            nodeid = cases[case_id]
            if nodeid not in found or rank[run_id] < found[nodeid][0]:
                found[nodeid] = (rank[run_id], float(duration))
    return {nodeid: duration for nodeid, (_rank, duration) in found.items()}


class ShardPlanning(RunExecution):
    """The claimed run: health check, its tests, the split, the shard rows and their tasks."""

    def execute(self) -> None:
        status = WorkStatus.ERROR
        sent = False
        try:
            child_env = runners.child_environment(self.env.env_vars)
            TestRun.objects.filter(pk=self.run.pk).update(log_path=str(self.log_path))
            ending = self.prepare_suite(child_env) or self.check_health(child_env)
            if ending is not None:
                status = self.decide(ending, None) if ending != runners.EXITED else WorkStatus.FINISHED
                return
            nodeids, ending = self.tests_to_run(child_env)
            if ending is not None:
                status = self.decide(ending, None)
                return
            if not nodeids:
                runners.append_log(self.log_path, "no test to run: the command collected none")
                status = WorkStatus.FINISHED
                return
            sent = self.dispatch(nodeids)
            status = WorkStatus.CANCELLED  # not sent: the run stopped while it was being planned
        except runners.CommandError as exc:
            self.problem = str(exc)
            runners.append_log(self.log_path, f"cannot run the test command: {exc}")
        except Exception:
            runners.append_log(self.log_path, "loopdash failed while planning the shards:\n" + traceback.format_exc())
            raise
        finally:
            self.live.finish()
            self.release_suite()  # each shard checks the run's commit out on its own worker
            if not sent:
                self.finalize(status, None)

    def tests_to_run(self, child_env: dict[str, str]) -> tuple[list[str], str | None]:
        """The run's node ids: its stored selection, or what the command collects now."""
        if self.run.scope in (TestRun.Scope.FAILED, TestRun.Scope.SELECTED):
            nodeids = self.selection()
            if not nodeids:
                raise runners.CommandError("none of the selected tests exists any more")
            return nodeids, None
        return self.collect(child_env)

    def collect(self, child_env: dict[str, str]) -> tuple[list[str], str | None]:
        """``--collect-only`` through the same argument list; the plugin writes the node ids as JSON."""
        args = self.expand(self.env.test_command)
        if self.run.scope == TestRun.Scope.SUBSET:
            if self.run.marker:
                args += runners.subset_arguments(self.env.marker_args, "marker", self.run.marker)
            if self.run.keyword:
                args += runners.subset_arguments(self.env.keyword_args, "keyword", self.run.keyword)
        env = dict(child_env)
        target = self.folder / COLLECT_FILE
        shutil.copyfile(runners.SELECT_PLUGIN_PATH, self.folder / f"{runners.SELECT_PLUGIN}.py")
        env["LOOPDASH_COLLECT_FILE"] = str(target)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.folder), env.get("PYTHONPATH", "")) if p)
        args += ["-p", runners.SELECT_PLUGIN, "--collect-only", "-q"]
        runners.append_log(self.log_path, "collecting the tests to split them into shards")
        proc = runners.GroupProcess(
            args,
            cwd=self.suite_dir(),
            env=env,
            log_path=self.folder / "collect.log",
            record_path=self.folder / runners.PROCESS_RECORD,
        )
        proc.start()
        try:
            ending = runners.supervise(proc, timeout_s=self.env.timeout_s, tick=self.tick)
        finally:
            proc.finish()
        if ending != runners.EXITED:
            return [], ending
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
            tests = [str(n) for n in data["tests"]]
            broken = [str(n) for n in data.get("broken", []) if n]
        except (OSError, ValueError, KeyError, TypeError):
            last = runners.read_tail(self.folder / "collect.log", max_lines=20)
            runners.append_log(self.log_path, f"collection failed (exit {proc.returncode}):\n{last}")
            raise runners.CommandError(f"collecting the tests failed (exit {proc.returncode})") from None
        if broken:
            runners.append_log(self.log_path, f"{len(broken)} module(s) failed to collect: {', '.join(broken[:5])}")
        return tests + [n for n in broken if n not in tests], None

    def dispatch(self, nodeids: list[str]) -> bool:
        """Split, write the shard rows and send their tasks on commit; False when the run stopped meanwhile."""
        durations = recorded_durations(self.run, nodeids)
        together = [str(p) for p in self.env.shard_together or [] if isinstance(p, str) and p]
        plan = shard_split.split(nodeids, durations, self.run.shards_requested, together=together)
        known = sum(1 for n in nodeids if n in durations)
        note = f"{len(nodeids)} tests ({known} with a recorded duration) split into {len(plan)} shard(s): " + ", ".join(
            f"#{p.index} {len(p.nodeids)} tests ~{p.planned_s:.0f} s" for p in plan
        )
        runners.append_log(self.log_path, note)
        # The planning log is complete: stored before any shard can end the run (its whole log starts with it).
        stored_logs.store_log(self.log_path, run_id=self.run.pk)
        with transaction.atomic():
            run = TestRun.objects.select_for_update().get(pk=self.run.pk)
            if run.status != WorkStatus.RUNNING:
                return False
            shards = RunShard.objects.bulk_create(
                [
                    RunShard(run=run, index=p.index, nodeids=p.nodeids, tests=len(p.nodeids), planned_s=p.planned_s)
                    for p in plan
                ]
            )
            eta = {"expected_tests": len(nodeids), "expected_s": sum(p.planned_s for p in plan)}
            TestRun.objects.filter(pk=run.pk).update(
                heartbeat_at=timezone.now(),
                properties={**(run.properties or {}), "eta": eta, "shards": len(plan)},
                log_tail=runners.read_tail(self.log_path),
            )
            ids = [shard.pk for shard in shards]
            transaction.on_commit(lambda: [current_app.send_task(RUN_SHARD_TASK, args=[pk]) for pk in ids])
        complete_if_done(self.run.pk)  # nothing, unless every shard ended already
        return True

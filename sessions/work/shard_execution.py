"""The worker side of one shard: its tests, run with the selection plugin, streamed into the shared run.

A shard runs like an unsharded run (``RunExecution``: the same command line, the same process guard
and group kill, the same once-a-second report-log reading and ``ResultWriter``), with four
differences:

- **Its tests come from its row** (``RunShard.nodeids``, through the broker-sent task and the
  database) and reach pytest through the selection plugin's JSON file, never the command line. The
  worker writes that file and copies the plugin (which ships with the worker's code) into a folder of
  its own; nothing is read from another machine's disk.
- **The tick writes two rows**: the shard's own (heartbeat, log tail, counts) and the run's live
  counts, as increments (``total = total + 3``) in one ``UPDATE ... WHERE status = 'running'``: an
  atomic add that never loses another shard's counts, and the compare-and-set that tells the shard
  the run was cancelled, timed out or lost. Results go in with the writer's own transaction per
  batch (COPY on PostgreSQL); shards write disjoint tests, so their batches never wait on each other.
- **The timeout is the run's**: a shard gets what is left of ``timeout_s`` since the run started.
  The shard that runs out marks the run ``timed_out``, which stops its siblings at their next tick.
- **Its end goes through ``shard_end.finish_shard``**, which writes the run's summary when it is the
  last shard to end.
"""

from __future__ import annotations

import logging
import statistics
import time
import traceback
from collections import Counter

from celery import current_app
from django.db.models import ExpressionWrapper, F, FloatField, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from ..ingest.live import FileTail, LiveReportLog
from ..models import RunShard, TestRun, WorkStatus
from ..services.ingestion.writer import ResultWriter
from . import runners, stored_logs
from .run_execution import RunExecution
from .shard_end import COUNTS, RUN_SHARD_TASK, finish_shard

log = logging.getLogger(__name__)

# A shard lost once is retried on another worker: a worker that finds it was the one that lost it
# hands it back to the queue (a second later) this many times before running it after all.
MAX_DEFERRALS = 20


def claim_shard(pk: int, worker: str) -> bool:
    """Compare-and-set ``queued`` → ``running`` while its run is running: a second delivery does nothing."""
    now = timezone.now()
    return bool(
        RunShard.objects.filter(pk=pk, status=WorkStatus.QUEUED, run__status=WorkStatus.RUNNING).update(
            status=WorkStatus.RUNNING, worker=worker[:255], started_at=now, heartbeat_at=now
        )
    )


def execute_shard(pk: int, *, worker: str, deferrals: int = 0) -> None:
    """Run a queued shard to its end (called by ``tasks.run_shard``)."""
    shard = RunShard.objects.filter(pk=pk).first()
    if shard is None or shard.status != WorkStatus.QUEUED:
        return
    if shard.lost_worker and shard.lost_worker == worker and deferrals < MAX_DEFERRALS:
        time.sleep(1.0)  # let another worker take it: this one lost it once
        current_app.send_task(RUN_SHARD_TASK, args=[pk], kwargs={"deferrals": deferrals + 1})
        return
    if not claim_shard(pk, worker):
        return
    shard = RunShard.objects.select_related("run", "run__environment", "run__deployment").get(pk=pk)
    ShardExecution(shard).execute()


class ShardExecution(RunExecution):
    """One claimed shard, from its command line to its end (and the run's summary when it is the last)."""

    def __init__(self, shard: RunShard) -> None:  # RunExecution's fields, in a folder of its own
        self.shard = shard
        self.run = shard.run
        self.env = self.run.environment
        self.folder = runners.fresh_dir("shards", shard.pk)
        self.log_path = self.folder / "output.log"
        self.reportlog_path = self.folder / "report-log.jsonl"
        self.junit_path = self.folder / "junit.xml"
        self.writer = ResultWriter(self.run)
        self.live = LiveReportLog(str(self.reportlog_path))
        self.tail = FileTail(self.reportlog_path)
        self.counts: Counter[str] = Counter()
        self.pushed: Counter[str] = Counter()
        self.pushed_duration = 0.0
        self.tests_duration = 0.0
        self.info = None
        self.used_junit = False
        self.problem = ""
        self.proc = None
        self.write_times: list[float] = []

    def command(self, child_env: dict[str, str]) -> list[str]:
        """The environment's command, the run's marker / keyword, then this shard's tests as a selection file."""
        args = self.expand(self.env.test_command)
        if self.run.scope == TestRun.Scope.SUBSET:
            if self.run.marker:
                args += runners.subset_arguments(self.env.marker_args, "marker", self.run.marker)
            if self.run.keyword:
                args += runners.subset_arguments(self.env.keyword_args, "keyword", self.run.keyword)
        nodeids = [str(n) for n in self.shard.nodeids or []]
        if not nodeids:
            raise runners.CommandError("this shard has no test to run")
        args += runners.selection_arguments(nodeids, self.folder, child_env)
        if self.env.writes_report_log:
            args += ["--report-log", str(self.reportlog_path)]
        if self.env.writes_junit:
            args += ["--junitxml", str(self.junit_path)]
        return args

    def remaining_s(self) -> float:
        """What is left of the run's timeout: it applies to the run as a whole, not to each shard."""
        started = self.run.started_at or timezone.now()
        return max(1.0, self.env.timeout_s - (timezone.now() - started).total_seconds())

    def execute(self) -> None:
        status = WorkStatus.ERROR
        code: int | None = None
        try:
            child_env = runners.child_environment(self.env.env_vars)
            if self.prepare_suite(child_env) is not None:
                status = WorkStatus.CANCELLED
                return
            args = self.command(child_env)
            runners.append_log(self.log_path, f"shard {self.shard.index} (attempt {self.shard.attempt})")
            for line in self.shard.log_tail.splitlines():  # a retry says why: the reaper's note on the row
                if line.startswith("[loopdash] lost"):
                    runners.append_log(self.log_path, line.removeprefix("[loopdash] "))
            self.proc = runners.GroupProcess(
                args,
                cwd=self.suite_dir(),
                env=child_env,
                log_path=self.log_path,
                record_path=self.folder / runners.PROCESS_RECORD,
            )
            self.proc.start()
            budget = self.remaining_s()
            ending = runners.supervise(self.proc, timeout_s=budget, tick=self.tick)
            code = self.proc.returncode
            if ending == runners.TIMED_OUT:
                runners.append_log(self.log_path, f"the run's timeout ({self.env.timeout_s} s) ran out: killed")
                TestRun.objects.filter(pk=self.run.pk, status=WorkStatus.RUNNING).update(status=WorkStatus.TIMED_OUT)
            self.collect_rest()
            status = self.decide(ending, code)
        except runners.CommandError as exc:
            self.problem = str(exc)
            runners.append_log(self.log_path, f"cannot run the shard: {exc}")
        except Exception:
            runners.append_log(self.log_path, "loopdash failed while running the shard:\n" + traceback.format_exc())
            raise
        finally:
            if self.proc is not None and self.proc.popen is not None:
                self.proc.finish()
            self.live.finish()
            self.release_suite()
            self.finalize(status, code)

    def push_counts(self) -> bool:
        """Add what this shard stored since the last push to the run's live counts; False once the run ended."""
        delta = {name: self.counts[name] - self.pushed[name] for name in COUNTS if name != "total"}
        updates: dict[str, object] = {name: F(name) + value for name, value in delta.items() if value}
        total = sum(delta.values())
        if total:
            updates["total"] = F("total") + total
        # The run's live pass rate from the counts this same UPDATE writes (its right-hand sides read the
        # row as it was): passed / executed, NULL while nothing was executed.
        passed, failed, errors = (F(name) + delta[name] for name in ("passed", "failed", "errors"))
        updates["pass_rate"] = ExpressionWrapper(
            Value(100.0) * passed / NullIf(passed + failed + errors, Value(0)), output_field=FloatField()
        )
        spent = self.tests_duration - self.pushed_duration
        if spent:
            updates["tests_duration_s"] = Coalesce(F("tests_duration_s"), Value(0.0)) + spent
        updates["heartbeat_at"] = timezone.now()
        if self.live.last_nodeid:
            updates["current_test"] = self.live.last_nodeid[:1000]
        if not TestRun.objects.filter(pk=self.run.pk, status=WorkStatus.RUNNING).update(**updates):
            return False
        self.pushed = Counter(self.counts)
        self.pushed_duration = self.tests_duration
        return True

    def shard_counts(self) -> dict[str, object]:
        counts = {name: self.counts[name] for name in COUNTS if name != "total"}
        return {**counts, "total": sum(counts.values()), "tests_duration_s": self.tests_duration}

    def tick(self) -> bool:
        """Once a second: store new results, beat on the shard's row, add to the run's counts."""
        began = time.perf_counter()
        self.read_reportlog()
        mine = RunShard.objects.filter(pk=self.shard.pk, status=WorkStatus.RUNNING, attempt=self.shard.attempt).update(
            heartbeat_at=timezone.now(),
            log_tail=runners.read_tail(self.log_path),
            current_test=self.live.last_nodeid[:1000],
            **self.shard_counts(),
        )
        alive = bool(mine) and self.push_counts()
        self.write_times.append(time.perf_counter() - began)
        return alive

    def finalize(self, status: str, code: int | None) -> None:
        """The shard's final status and figures; the run's summary when this was its last live shard."""
        run_status = TestRun.objects.filter(pk=self.run.pk).values_list("status", flat=True).first()
        if status == WorkStatus.CANCELLED and run_status in (WorkStatus.TIMED_OUT, WorkStatus.LOST):
            status = run_status  # stopped because a sibling ran out of time or the run was lost
        if run_status == WorkStatus.RUNNING:
            self.push_counts()
        if self.write_times:
            ordered = sorted(self.write_times)
            runners.append_log(
                self.log_path,
                f"{len(ordered)} ticks; store + heartbeat took median {statistics.median(ordered) * 1000:.0f} ms, "
                f"max {ordered[-1] * 1000:.0f} ms",
            )
        exit_code = self.info.exitstatus if self.info is not None and self.info.exitstatus is not None else code
        stored_logs.store_log(
            self.log_path,
            run_id=self.run.pk,
            shard_id=self.shard.pk,
            attempt=self.shard.attempt,
            worker=self.shard.worker,
        )
        started = self.shard.started_at or timezone.now()
        finish_shard(
            self.shard,
            status,
            exit_code=exit_code,
            duration_s=round((timezone.now() - started).total_seconds(), 3),
            log_tail=runners.read_tail(self.log_path),
            current_test="",
            heartbeat_at=timezone.now(),
            **self.shard_counts(),
        )

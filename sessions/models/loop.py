"""The loop itself: environments, sessions and their criteria, cycles, deployments and test runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse


class WorkStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FINISHED = "finished"
    FAILED = "failed"
    ERROR = "error"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    LOST = "lost"


# Work a worker still owes: a page polls while a row is in one of these.
LIVE_STATUSES = (WorkStatus.QUEUED, WorkStatus.RUNNING)


def default_marker_args() -> list[str]:
    """How a marker expression reaches a pytest command: ``-m EXPR`` (the expression is one argument)."""
    return ["-m", "{marker}"]


def default_keyword_args() -> list[str]:
    """How a keyword expression reaches a pytest command: ``-k EXPR`` (the expression is one argument)."""
    return ["-k", "{keyword}"]


def default_setup_cache_files() -> list[str]:
    """Lock files whose hash keys a reusable setup: the usual Python and Node ones."""
    return ["requirements.txt", "poetry.lock", "package-lock.json"]


# How a deployment can end.
DEPLOY_FINAL_STATUSES = (
    WorkStatus.SUCCEEDED,
    WorkStatus.FAILED,
    WorkStatus.TIMED_OUT,
    WorkStatus.CANCELLED,
    WorkStatus.LOST,
)


class Environment(models.Model):
    """Where the loop runs. Only admins edit it: its commands are what workers execute."""

    name = models.SlugField(max_length=64, unique=True)
    description = models.TextField(blank=True)
    deploy_command = models.JSONField(
        default=list, blank=True, help_text='Argument list, e.g. ["python", "deploy.py", "--revision", "{revision}"].'
    )
    test_command = models.JSONField(
        default=list, blank=True, help_text='Argument list, e.g. ["python", "-m", "pytest", "tests"].'
    )
    working_dir = models.CharField(max_length=500, blank=True)
    env_vars = models.JSONField(default=dict, blank=True, help_text="Extra environment variables for both commands.")
    timeout_s = models.PositiveIntegerField(default=3600)
    deploy_timeout_s = models.PositiveIntegerField(default=600)
    revisions = models.JSONField(
        default=list, blank=True, help_text='Known revisions: [{"revision": "r1", "commit": "sha", "message": ""}].'
    )
    default_revision = models.CharField(max_length=100, blank=True)
    writes_report_log = models.BooleanField(default=True, help_text="Append --report-log <path> to the test command.")
    writes_junit = models.BooleanField(default=True, help_text="Append --junitxml <path> to the test command.")
    end_to_end = models.BooleanField(default=True, help_text="Flag tests under 0.01 s as suspect (not really run).")
    health_check = models.JSONField(
        default=list,
        blank=True,
        help_text="Argument list the worker runs before the tests (JSON, like the commands). A non-zero exit "
        "ends the run at once, excluded: target unreachable. Empty: no check.",
    )
    health_check_timeout_s = models.PositiveIntegerField(default=30)
    unreachable_share = models.PositiveSmallIntegerField(
        default=90,
        help_text="Exclude a run when at least this % of its executed tests failed with one infrastructure "
        "signature (connection refused, DNS, 502/503 from the target...). 0 turns the rule off.",
    )
    metric_targets = models.JSONField(
        default=dict, blank=True, help_text='{"ws_latency_ms": {"target": 50, "lower_is_better": true}}'
    )
    # How a subset reaches the test command: appended to it, the placeholder replaced inside its one
    # argument (user text never becomes an argument of its own). Empty: this command cannot run that subset.
    marker_args = models.JSONField(
        default=default_marker_args,
        blank=True,
        help_text='Arguments that run a marker expression, "{marker}" inside one of them, e.g. ["-m", "{marker}"]. '
        "Empty: no marker subsets.",
    )
    keyword_args = models.JSONField(
        default=default_keyword_args,
        blank=True,
        help_text='Arguments that run a keyword expression, "{keyword}" inside one of them, e.g. ["-k", "{keyword}"]. '
        "Empty: no keyword subsets.",
    )
    # Sharded runs (docs/WORKERS.md#shards): how many parts a run is split into unless the request says,
    # and files whose tests must run in one shard (module-scoped state, an order they rely on).
    default_shards = models.PositiveSmallIntegerField(
        default=1,
        blank=True,
        help_text="Shards a test run is split into unless the request names a number (1 to 32).",
    )
    shard_together = models.JSONField(
        default=list,
        blank=True,
        help_text='Test files (globs) whose tests stay in one shard, e.g. ["tests/test_checkout.py", "tests/flows/*"].',
    )
    # Retention (docs/RETENTION.md): how long results keep their text (message, traceback, output) and
    # runs their log. Empty: the LOOPDASH_RETENTION_DAYS / _CYCLES settings; 0: no limit of that kind.
    detail_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Keep results' full detail this many days. Empty: the server's default."
    )
    detail_cycles = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Keep full detail for the latest this many cycles of each session. Empty: the server's default.",
    )

    # The suite from a repository (docs/WORKERS.md#the-suite-from-a-repository): each worker fetches it into
    # a mirror of its own and checks the run's commit out into a fresh folder. Empty: working_dir on disk.
    repository = models.CharField(
        max_length=500,
        blank=True,
        help_text="Git URL or path of the repository holding the suite. Credentials come from the worker's "
        "environment (SSH agent, credential helper); a password in the URL is masked everywhere.",
    )
    setup_command = models.JSONField(
        default=list,
        blank=True,
        help_text='Argument list run in the checkout before the tests, e.g. ["{python}", "-m", "pip", "install", '
        '"-r", "requirements.txt", "--target", "{setup_dir}"]. Empty: no setup.',
    )
    setup_cache_files = models.JSONField(
        default=default_setup_cache_files,
        blank=True,
        help_text="Files of the checkout whose content decides whether the setup's result ({setup_dir}) is reused.",
    )

    def __str__(self) -> str:
        return self.name


class LoopSession(models.Model):
    """One push toward a goal, such as "all P1 tests pass on staging"."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        GREEN = "green"
        ABANDONED = "abandoned"

    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="sessions")
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    mission = models.TextField(blank=True)
    goal_pass_rate = models.FloatField(default=100.0)
    goal_priority = models.CharField(max_length=10, blank=True, help_text="Restrict the goal to a priority, e.g. P1.")
    status = models.CharField(max_length=20, choices=Status, default=Status.ACTIVE)
    tracking_url = models.URLField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Denormalised for the sessions list: updated whenever a run's summary is written.
    latest_run = models.ForeignKey("TestRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    cycle_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("session_detail", args=[self.slug])


class SuccessCriterion(models.Model):
    """An item of a session's checklist; automatic kinds tick themselves from the latest run."""

    class Kind(models.TextChoices):
        MANUAL = "manual"
        PASS_RATE = "pass_rate", "Pass rate of a priority at or above a threshold"
        NO_SUSPECTS = "no_suspects", "No suspect 0.00 s tests"
        TESTS_PASS = "tests_pass", "Named tests passing"
        METRIC = "metric", "A metric within its target"

    session = models.ForeignKey(LoopSession, on_delete=models.CASCADE, related_name="criteria")
    position = models.PositiveIntegerField(default=0)
    text = models.CharField(max_length=500)
    kind = models.CharField(max_length=20, choices=Kind, default=Kind.MANUAL)
    params = models.JSONField(default=dict, blank=True)
    done = models.BooleanField(default=False)
    # Automatic kinds: the run that last ticked or unticked the item, and what it measured.
    evaluated_run = models.ForeignKey(
        "TestRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    evaluated_at = models.DateTimeField(null=True, blank=True)
    detail = models.CharField(max_length=300, blank=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.text

    @property
    def automatic(self) -> bool:
        return self.kind != self.Kind.MANUAL


class Cycle(models.Model):
    """One turn of the loop; the x-axis of every trend chart."""

    session = models.ForeignKey(LoopSession, on_delete=models.CASCADE, related_name="cycles")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "number"]
        constraints = [models.UniqueConstraint(fields=["session", "number"], name="cycle_unique_number")]

    def __str__(self) -> str:
        return f"{self.session.slug} cycle {self.number}"


class Deployment(models.Model):
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="deployments")
    cycle = models.ForeignKey(Cycle, null=True, blank=True, on_delete=models.SET_NULL, related_name="deployments")
    revision = models.CharField(max_length=100)
    commit_sha = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(max_length=20, choices=WorkStatus, default=WorkStatus.QUEUED)
    command = models.JSONField(default=list, blank=True)
    log_path = models.CharField(max_length=500, blank=True)
    log_tail = models.TextField(blank=True)
    triggered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    # Set when retention dropped its log (file, stored copy and tail): services/retention.py.
    detail_pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The reaper and the deploy lock: live deployments of an environment.
            models.Index(fields=["environment", "status"], name="deploy_env_status"),
        ]

    def __str__(self) -> str:
        return f"deployment {self.pk} of {self.revision}"

    def get_absolute_url(self) -> str:
        return reverse("deployment_detail", args=[self.pk])


class TestRun(models.Model):
    """A run of a test command, or an upload of a results file made elsewhere."""

    __test__ = False  # not a pytest test class

    class Source(models.TextChoices):
        UPLOAD = "upload"
        CLI = "cli"
        API = "api"
        UI = "ui"
        SCHEDULE = "schedule"
        CI = "ci"  # fed live from a CI job over HTTP (api_live); the reaper ends it when it falls silent

    class Scope(models.TextChoices):
        ALL = "all"
        FAILED = "failed"
        SELECTED = "selected"
        # A marker or keyword expression chose the tests: not the full suite (trends and criteria skip it).
        SUBSET = "subset"

    FINAL_STATUSES = (
        WorkStatus.FINISHED,
        WorkStatus.ERROR,
        WorkStatus.TIMED_OUT,
        WorkStatus.CANCELLED,
        WorkStatus.LOST,
    )

    session = models.ForeignKey(LoopSession, on_delete=models.CASCADE, related_name="runs")
    cycle = models.ForeignKey(Cycle, on_delete=models.CASCADE, related_name="runs")
    environment = models.ForeignKey(Environment, on_delete=models.PROTECT, related_name="runs")
    deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    label = models.CharField(max_length=200, blank=True, help_text="File name or suite name.")
    status = models.CharField(max_length=20, choices=WorkStatus, default=WorkStatus.QUEUED)
    source = models.CharField(max_length=20, choices=Source, default=Source.UPLOAD)
    format = models.CharField(max_length=20, blank=True)
    command = models.JSONField(default=list, blank=True)
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    scope = models.CharField(max_length=20, choices=Scope, default=Scope.ALL)
    selection = models.JSONField(default=list, blank=True, help_text="Test case ids chosen for a selected rerun.")
    # What a subset run selected by expression (scope "subset"), as the operator typed it, stripped.
    marker = models.CharField(max_length=200, blank=True)
    keyword = models.CharField(max_length=200, blank=True)
    # With a repository: the ref this run's suite was asked at (a deployment's revision, or --revision)
    # and the commit it resolved to, whose checkout the worker ran.
    revision = models.CharField(max_length=100, blank=True)
    commit = models.CharField(max_length=64, blank=True)
    # How many shards were asked for (1: not sharded); the parts themselves are RunShard rows.
    shards_requested = models.PositiveSmallIntegerField(default=1)
    content_hash = models.CharField(max_length=64, blank=True)
    triggered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    exitstatus = models.IntegerField(null=True, blank=True)
    incomplete = models.BooleanField(default=False)
    log_path = models.CharField(max_length=500, blank=True)
    log_tail = models.TextField(blank=True)
    current_test = models.CharField(max_length=1000, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    # What the worker knows while the run is live, written with the live counts once a second: the recent
    # rate (tests/s), counts by priority, failures by signature as they arrive (services/live_figures.py).
    live_figures = models.JSONField(default=dict, blank=True)

    # The summary, written once when the run ends (and as running counts while it is live).
    total = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    xfailed = models.PositiveIntegerField(default=0)
    xpassed = models.PositiveIntegerField(default=0)
    suspect = models.PositiveIntegerField(default=0)
    # Results of quarantined tests (counted in ``total`` and the outcome counts, left out of ``pass_rate``).
    quarantined = models.PositiveIntegerField(default=0)
    # Of those, how many passed and how many executed (passed, failed, errors): the key-metrics table writes a
    # pass rate's count ("22/25") without them, as the rate itself is. 0 for runs summarised before 0017.
    quarantined_passed = models.PositiveIntegerField(default=0)
    quarantined_executed = models.PositiveIntegerField(default=0)
    pass_rate = models.FloatField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    tests_duration_s = models.FloatField(null=True, blank=True)
    mrr_at_risk = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    by_priority = models.JSONField(default=dict, blank=True)  # {"P1": {"passed": 3, "failed": 1, "errors": 0, ...}}
    metrics = models.JSONField(default=dict, blank=True)  # {"ws_latency_ms": 42.0}: median of reported values
    summary_written = models.BooleanField(default=False)
    # Runs that count (docs/COUNTING.md): finished, complete and not excluded. Written by the
    # run-completion pipeline and by exclude/include; trends, headline, criteria, flakiness and fix
    # verdicts read only these runs.
    counted = models.BooleanField(default=False, db_index=True)
    excluded = models.BooleanField(default=False)
    excluded_reason = models.CharField(max_length=500, blank=True)
    excluded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    excluded_at = models.DateTimeField(null=True, blank=True)
    # Retention: when the bulky text of this run's results and its log were dropped (outcomes, durations
    # and the summary stay). Empty: full detail.
    detail_pruned_at = models.DateTimeField(null=True, blank=True)
    # Suite-level <system-out>/<system-err> of an uploaded file (Bazel's only account of a failure), bounded.
    suite_output = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The same file uploaded twice is one run.
            models.UniqueConstraint(
                fields=["session", "content_hash"],
                condition=~models.Q(content_hash=""),
                name="run_unique_upload",
            ),
        ]
        indexes = [
            # Session page: runs of a session in cycle order.
            models.Index(fields=["session", "cycle", "created_at"], name="run_session_cycle"),
            # Reaper: live runs whose heartbeat stopped.
            models.Index(fields=["status", "heartbeat_at"], name="run_status_heartbeat"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("run_detail", args=[self.pk])

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_STATUSES

    @property
    def executed(self) -> int:
        return self.passed + self.failed + self.errors


class SessionEvent(models.Model):
    """The session's activity: who excluded or included which run, and why."""

    session = models.ForeignKey(LoopSession, on_delete=models.CASCADE, related_name="events")
    run = models.ForeignKey(TestRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=30)
    detail = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.action}: {self.detail}"

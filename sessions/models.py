"""The loop, as data: environments, sessions, cycles, deployments, runs, results, signatures, analyses, fixes.

Pages read the pre-aggregated columns (a run's summary, a signature's counters,
RunSignature rows) so that no page counts results on a request.
"""

from __future__ import annotations

import hashlib
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.urls import reverse


def validate_regex(value: str) -> None:
    """Refuse a pattern that does not compile: ingestion compiles every category's pattern."""
    try:
        re.compile(value)
    except re.error as exc:
        raise ValidationError(f"Not a valid regular expression: {exc}") from exc


def identity_hash(text: str) -> str:
    """Hash a test identity: node ids can be longer than a B-tree index entry allows."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


class Outcome(models.TextChoices):
    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    XFAILED = "xfailed"
    XPASSED = "xpassed"


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
    metric_targets = models.JSONField(default=dict, blank=True, help_text='{"ws_latency_ms": {"target": 50, "lower_is_better": true}}')

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

    class Scope(models.TextChoices):
        ALL = "all"
        FAILED = "failed"
        SELECTED = "selected"

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

    # The summary, written once when the run ends (and as running counts while it is live).
    total = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    xfailed = models.PositiveIntegerField(default=0)
    xpassed = models.PositiveIntegerField(default=0)
    suspect = models.PositiveIntegerField(default=0)
    pass_rate = models.FloatField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    tests_duration_s = models.FloatField(null=True, blank=True)
    mrr_at_risk = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    by_priority = models.JSONField(default=dict, blank=True)  # {"P1": {"passed": 3, "failed": 1, "errors": 0, ...}}
    metrics = models.JSONField(default=dict, blank=True)  # {"ws_latency_ms": 42.0}: median of reported values
    summary_written = models.BooleanField(default=False)

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
        return self.status in (WorkStatus.QUEUED, WorkStatus.RUNNING)

    @property
    def executed(self) -> int:
        return self.passed + self.failed + self.errors


class BusinessArea(models.Model):
    """A part of the product with the monthly revenue that depends on it."""

    name = models.CharField(max_length=100, unique=True)
    mrr = models.DecimalField(max_digits=14, decimal_places=2, default=0, help_text="Monthly recurring revenue.")

    def __str__(self) -> str:
        return self.name


class ImpactRule(models.Model):
    """Maps tests to a priority and/or business area, by node-id glob, marker or priority."""

    class Match(models.TextChoices):
        GLOB = "glob", "Node-id glob"
        MARKER = "marker", "Marker"
        PRIORITY = "priority", "Priority"

    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.CASCADE, related_name="impact_rules",
        help_text="Empty: applies to every environment.",
    )
    position = models.PositiveIntegerField(default=0, help_text="Rules apply in order; the first match of each kind wins.")
    match = models.CharField(max_length=20, choices=Match)
    pattern = models.CharField(max_length=500)
    priority = models.CharField(max_length=10, blank=True, help_text="Priority given to matching tests, e.g. P1.")
    area = models.ForeignKey(BusinessArea, null=True, blank=True, on_delete=models.CASCADE, related_name="rules")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.match} {self.pattern}"


class TestCase(models.Model):
    """A test's identity in an environment."""

    __test__ = False

    # No separate index on environment: the unique (environment, nodeid_hash) leads with it. No database
    # FK constraints here either (as on TestResult): checking two per new case cost 0.4 s of a
    # 100,000-case upload; ingestion resolves both ids itself and deletes cascade through the ORM.
    environment = models.ForeignKey(
        Environment, on_delete=models.CASCADE, related_name="cases", db_index=False, db_constraint=False
    )
    nodeid = models.TextField()
    nodeid_hash = models.CharField(max_length=40)
    name = models.TextField()
    file = models.TextField(blank=True)
    module = models.TextField(blank=True)
    priority = models.CharField(max_length=10, blank=True)
    area = models.ForeignKey(
        BusinessArea, null=True, blank=True, on_delete=models.SET_NULL, related_name="cases", db_constraint=False
    )
    markers = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Flakiness, kept up to date by lifecycle.on_run_finished so that no page scans results for it.
    # ``recent``: one letter per finished run that executed the test (P passed, F failed, E error), oldest
    # first, at most 30; kept only for tests that have failed at least once (the others never flipped).
    # Ingestion COPYs new cases without these columns: the database supplies their defaults.
    recent = models.CharField(max_length=30, blank=True, db_default="")
    flip_rate = models.FloatField(null=True, blank=True, help_text="Pass/fail changes over the recent runs, 0-1.")
    flaky_key = models.CharField(
        max_length=100, blank=True, db_default="", help_text="Revision on which it passed and failed."
    )
    flaky_run = models.ForeignKey(
        "TestRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=False
    )
    flaky_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Ingestion looks cases up by (environment, hash of node id).
            models.UniqueConstraint(fields=["environment", "nodeid_hash"], name="case_unique_identity"),
        ]
        indexes = [
            # Session page: the environment's flaky tests, most recently caught first.
            models.Index(
                fields=["environment", "-flaky_at"], name="case_env_flaky", condition=models.Q(flaky_at__isnull=False)
            ),
            # flaky.record_run: the tests of an environment whose history is being kept.
            models.Index(fields=["environment"], name="case_env_tracked", condition=~models.Q(recent="")),
        ]

    def __str__(self) -> str:
        return self.nodeid[:200]

    def get_absolute_url(self) -> str:
        return reverse("test_detail", args=[self.pk])


class SignatureCategory(models.Model):
    """An admin-defined label (infrastructure, product, test code...) matched by a regular expression."""

    name = models.CharField(max_length=100, unique=True)
    pattern = models.CharField(
        max_length=500,
        validators=[validate_regex],
        help_text="Regular expression matched against the signature's text. Saving re-labels every signature.",
    )
    position = models.PositiveIntegerField(default=0)
    colour = models.CharField(max_length=20, default="#6b7280")

    class Meta:
        ordering = ["position", "id"]
        verbose_name_plural = "signature categories"

    def __str__(self) -> str:
        return self.name


class FailureSignature(models.Model):
    """A normalised fingerprint of a failure, the same across runs, cycles, sessions and tests."""

    class Status(models.TextChoices):
        NEW = "new"
        INVESTIGATING = "investigating"
        ROOT_CAUSED = "root_caused", "Root-caused"
        FIX_DEPLOYED = "fix_deployed", "Fix deployed"
        VERIFIED = "verified"
        REGRESSED = "regressed"

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="signatures")
    fingerprint = models.CharField(max_length=40)
    error_type = models.CharField(max_length=300, blank=True)
    normalized = models.TextField()
    title = models.CharField(max_length=300)
    status = models.CharField(max_length=20, choices=Status, default=Status.NEW)
    category = models.ForeignKey(SignatureCategory, null=True, blank=True, on_delete=models.SET_NULL)
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged")
    first_seen_run = models.ForeignKey(TestRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_seen_run = models.ForeignKey(TestRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    first_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    result_count = models.PositiveIntegerField(default=0)
    test_count = models.PositiveIntegerField(default=0)
    module_count = models.PositiveIntegerField(default=0)
    sample_message = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            # Ingestion finds a failure's signature by (environment, fingerprint).
            models.UniqueConstraint(fields=["environment", "fingerprint"], name="signature_unique_fingerprint"),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("signature_detail", args=[self.pk])


class SignatureEvent(models.Model):
    """What happened to a signature and who did it: title and status edits, merges, fix verdicts."""

    signature = models.ForeignKey(FailureSignature, on_delete=models.CASCADE, related_name="events")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=40)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} on {self.signature_id}"


class RunSignature(models.Model):
    """A signature's footprint in one run, written with the run's summary (run page, per-cycle charts)."""

    run = models.ForeignKey(TestRun, on_delete=models.CASCADE, related_name="signature_counts")
    signature = models.ForeignKey(FailureSignature, on_delete=models.CASCADE, related_name="run_counts")
    results = models.PositiveIntegerField(default=0)
    tests = models.PositiveIntegerField(default=0)
    modules = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "signature"], name="runsignature_unique")]
        indexes = [
            # Signature page: occurrences per cycle, first and last runs.
            models.Index(fields=["signature", "run"], name="runsig_signature_run"),
        ]

    def __str__(self) -> str:
        return f"{self.signature_id} in run {self.run_id}: {self.results}"


class TestResult(models.Model):
    """One test in one run. Written in bulk (COPY on PostgreSQL), never one by one."""

    __test__ = False

    # FK indexes are off: the composite indexes below lead with these columns,
    # and every extra index slows the COPY of a 100,000-result file. Database FK
    # constraints are off too: Django makes them deferred on PostgreSQL, and
    # checking 300,000 deferred triggers at commit doubled the time of a large
    # ingest. Ingestion is the only writer and resolves every id itself; deletes
    # cascade through the ORM.
    run = models.ForeignKey(
        TestRun, on_delete=models.CASCADE, related_name="results", db_index=False, db_constraint=False
    )
    case = models.ForeignKey(
        TestCase, on_delete=models.CASCADE, related_name="results", db_index=False, db_constraint=False
    )
    outcome = models.CharField(max_length=10, choices=Outcome)
    duration = models.FloatField(null=True, blank=True)
    suspect = models.BooleanField(default=False)
    phase = models.CharField(max_length=10, blank=True)
    message = models.TextField(blank=True)
    details = models.TextField(blank=True)
    signature = models.ForeignKey(
        FailureSignature,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="results",
        db_index=False,
        db_constraint=False,
    )
    properties = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [
            # Run page: a run's results filtered by outcome, in id order (keyset pagination).
            models.Index(fields=["run", "outcome", "id"], name="result_run_outcome"),
            # Test page: a test's history across runs.
            models.Index(fields=["case", "run"], name="result_case_run"),
            # Signature page: a signature's sample results.
            models.Index(fields=["signature", "run"], name="result_signature_run"),
        ]

    def __str__(self) -> str:
        return f"{self.outcome} in run {self.run_id}"


class Analysis(models.Model):
    """A five-whys analysis of a signature."""

    class Status(models.TextChoices):
        HYPOTHESIS = "hypothesis"
        CONFIRMED = "confirmed"
        REFUTED = "refuted"

    signature = models.ForeignKey(FailureSignature, on_delete=models.CASCADE, related_name="analyses")
    problem = models.TextField(blank=True)
    root_cause = models.TextField(blank=True)
    error_behind_error = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status, default=Status.HYPOTHESIS)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every edit; stale edits are refused.")

    class Meta:
        ordering = ["created_at"]
        verbose_name_plural = "analyses"

    def __str__(self) -> str:
        return f"analysis {self.pk} of {self.signature_id}"


class WhyStep(models.Model):
    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(default=0)
    question = models.TextField()
    answer = models.TextField(blank=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.question[:100]


class AnalysisEdit(models.Model):
    """Who changed an analysis, when, and what it looked like afterwards."""

    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="edits")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=100)
    snapshot = models.JSONField(default=dict)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.user_id} at {self.at:%Y-%m-%d %H:%M}"


class Fix(models.Model):
    """A commit that claims to fix an analysis; verified by the first run after it is deployed."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DEPLOYED = "deployed"
        VERIFIED = "verified"
        DID_NOT_FIX = "did_not_fix", "Did not fix"

    analysis = models.ForeignKey(Analysis, on_delete=models.CASCADE, related_name="fixes")
    sha = models.CharField(max_length=64, db_index=True)
    message = models.TextField(blank=True)
    url = models.URLField(blank=True)
    status = models.CharField(max_length=20, choices=Status, default=Status.PENDING)
    deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="fixes")
    verified_by = models.ForeignKey(TestRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        verbose_name_plural = "fixes"

    def __str__(self) -> str:
        return self.sha[:12]


class ApiToken(models.Model):
    """A bearer token for CI. Only its SHA-256 is stored; the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


@receiver(post_save, sender=SignatureCategory)
@receiver(post_delete, sender=SignatureCategory)
def _relabel_signatures(sender, **kwargs) -> None:  # noqa: ANN001, ANN003
    """A category's pattern changed, or one was added or removed: label every signature again."""
    if kwargs.get("raw"):
        return  # loaddata: the fixture carries the labels
    from .services.triage import apply_categories

    apply_categories()

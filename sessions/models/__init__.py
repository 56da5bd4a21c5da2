"""The loop, as data: environments, sessions, cycles, deployments, runs, results, signatures, analyses, fixes.

One module per part of the model (``loop``, ``results``, ``triage``, ``tokens``); this package is the
app's models module, so every model is importable from ``sessions.models`` as Django expects.
Pages read the pre-aggregated columns (a run's summary, a signature's counters, RunSignature rows)
so that no page counts results on a request.
"""

from .comparisons import ComparisonEntry, RunComparison
from .confirmations import CONFIRMATION_RUNS_DEFAULT, CONFIRMATION_RUNS_MAX, FixConfirmation, FixConfirmationRun
from .discussion import SignatureComment
from .live import LiveStream
from .logs import StoredLog
from .loop import (
    DEPLOY_FINAL_STATUSES,
    LIVE_STATUSES,
    Cycle,
    Deployment,
    Environment,
    LoopSession,
    SessionEvent,
    SuccessCriterion,
    TestRun,
    WorkStatus,
)
from .quarantine import Quarantine
from .results import BusinessArea, ImpactRule, Outcome, TestCase, TestResult, identity_hash
from .shards import SHARDS_MAX, RunShard
from .tokens import ApiToken
from .triage import (
    Analysis,
    AnalysisEdit,
    FailureSignature,
    Fix,
    RunSignature,
    SignatureCategory,
    SignatureEvent,
    WhyStep,
    validate_regex,
)
from .webhooks import EVENTS as WEBHOOK_EVENTS
from .webhooks import Webhook, WebhookDelivery

__all__ = [
    "CONFIRMATION_RUNS_DEFAULT",
    "CONFIRMATION_RUNS_MAX",
    "DEPLOY_FINAL_STATUSES",
    "LIVE_STATUSES",
    "SHARDS_MAX",
    "Analysis",
    "AnalysisEdit",
    "ApiToken",
    "BusinessArea",
    "ComparisonEntry",
    "Cycle",
    "Deployment",
    "Environment",
    "FailureSignature",
    "Fix",
    "FixConfirmation",
    "FixConfirmationRun",
    "ImpactRule",
    "LiveStream",
    "LoopSession",
    "Outcome",
    "Quarantine",
    "RunShard",
    "RunComparison",
    "RunSignature",
    "SessionEvent",
    "SignatureCategory",
    "SignatureComment",
    "SignatureEvent",
    "StoredLog",
    "SuccessCriterion",
    "TestCase",
    "TestResult",
    "TestRun",
    "WEBHOOK_EVENTS",
    "Webhook",
    "WebhookDelivery",
    "WhyStep",
    "WorkStatus",
    "identity_hash",
    "validate_regex",
]

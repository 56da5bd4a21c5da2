"""The loop, as data: environments, sessions, cycles, deployments, runs, results, signatures, analyses, fixes.

One module per part of the model (``loop``, ``results``, ``triage``, ``tokens``); this package is the
app's models module, so every model is importable from ``sessions.models`` as Django expects.
Pages read the pre-aggregated columns (a run's summary, a signature's counters, RunSignature rows)
so that no page counts results on a request.
"""

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
from .results import BusinessArea, ImpactRule, Outcome, TestCase, TestResult, identity_hash
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

__all__ = [
    "DEPLOY_FINAL_STATUSES",
    "LIVE_STATUSES",
    "Analysis",
    "AnalysisEdit",
    "ApiToken",
    "BusinessArea",
    "Cycle",
    "Deployment",
    "Environment",
    "FailureSignature",
    "Fix",
    "ImpactRule",
    "LoopSession",
    "Outcome",
    "RunSignature",
    "SessionEvent",
    "SignatureCategory",
    "SignatureEvent",
    "SuccessCriterion",
    "TestCase",
    "TestResult",
    "TestRun",
    "WhyStep",
    "WorkStatus",
    "identity_hash",
    "validate_regex",
]

"""The metrics runs report (medians of latency and the like) against the environment's targets."""

from __future__ import annotations

from dataclasses import dataclass

from ..charts import MetricPoint
from ..models import TestRun
from ..services.criteria import metric_status
from .cycles import CycleRow


@dataclass(slots=True)
class MetricRow:
    name: str
    value: float | None
    target: float | None
    lower_is_better: bool
    ok: bool | None


def metric_rows(run: TestRun | None, targets: dict) -> list[MetricRow]:
    """Each metric with a target first (in target order), then the others the run reported."""
    metrics = (run.metrics or {}) if run is not None else {}
    names = [n for n in (targets or {}) if isinstance(n, str)]
    names += sorted(n for n in metrics if n not in names)
    rows = []
    for name in names:
        raw = metrics.get(name)
        value = float(raw) if isinstance(raw, int | float) else None
        ok, target, lower = metric_status(value, (targets or {}).get(name))
        rows.append(MetricRow(name=name, value=value, target=target, lower_is_better=lower, ok=ok))
    return rows


def metric_series(
    cycles: list[CycleRow], targets: dict, limit: int = 4
) -> list[tuple[str, list[MetricPoint], float | None, bool]]:
    """For each targeted metric: its value per cycle (from the representative runs)."""
    out = []
    for name, spec in list((targets or {}).items())[:limit]:
        _ok, target, lower = metric_status(None, spec)
        points = []
        for row in cycles:
            run = row.representative
            raw = (run.metrics or {}).get(name) if run is not None else None
            points.append(
                MetricPoint(cycle=row.cycle.number, value=float(raw) if isinstance(raw, int | float) else None)
            )
        if any(p.value is not None for p in points):
            out.append((name, points, target, lower))
    return out

"""Business impact: which priority and business area a test belongs to.

Rules are read once per ingestion and applied in Python to each new test case,
so a 100,000-case file costs one query for the rules, not one per case.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from django.db.models import Q

from ..models import BusinessArea, Environment, ImpactRule

# Markers that name a priority by themselves: p1, P1, priority1, priority_1.
_PRIORITY_MARKER = re.compile(r"^(?:p|priority_?)(\d)$", re.IGNORECASE)
# Markers that name a business area: area_chat → "chat".
_AREA_MARKER = re.compile(r"^area_(\w+)$")


@dataclass(frozen=True, slots=True)
class Classified:
    priority: str
    area_id: int | None


class ImpactClassifier:
    """Give a test its priority and business area from its node id and markers."""

    def __init__(self, environment: Environment) -> None:
        rules = list(
            ImpactRule.objects.filter(Q(environment=environment) | Q(environment__isnull=True)).order_by(
                "position", "id"
            )
        )
        self._rules = [
            (r.match, r.pattern, re.compile(fnmatch.translate(r.pattern)), r.priority, r.area_id) for r in rules
        ]
        self._areas_by_name = {a.name.lower(): a.pk for a in BusinessArea.objects.all()}

    def classify(self, nodeid: str, markers: tuple[str, ...] | list[str]) -> Classified:
        priority = ""
        for marker in markers:
            found = _PRIORITY_MARKER.match(marker)
            if found:
                priority = f"P{found.group(1)}"
                break
        area_id: int | None = None
        for marker in markers:
            found = _AREA_MARKER.match(marker)
            if found and found.group(1).lower() in self._areas_by_name:
                area_id = self._areas_by_name[found.group(1).lower()]
                break
        marker_set = set(markers)
        # Glob and marker rules first; priority rules then map the priority found to an area.
        for match, pattern, glob, rule_priority, rule_area in self._rules:
            if match == ImpactRule.Match.PRIORITY:
                continue
            hit = glob.match(nodeid) if match == ImpactRule.Match.GLOB else pattern in marker_set
            if hit:
                priority = priority or rule_priority
                area_id = area_id or rule_area
        for match, pattern, _glob, _priority, rule_area in self._rules:
            if match == ImpactRule.Match.PRIORITY and priority and pattern.upper() == priority.upper():
                area_id = area_id or rule_area
        return Classified(priority=priority, area_id=area_id)

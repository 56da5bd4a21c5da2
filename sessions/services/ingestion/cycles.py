"""Which cycle of a session a run goes to.

An upload names a cycle or lands in the latest one; the worker's runs and deployments use the same
rule. A cycle is created when first named, and the session's ``cycle_count`` follows.
"""

from __future__ import annotations

from django.db.models import Max

from ...models import Cycle, LoopSession


def resolve_cycle(session: LoopSession, number: int | None) -> Cycle:
    """A named cycle (created if new), else the session's latest, else cycle 1."""
    if number is None:
        latest = session.cycles.order_by("-number").first()
        if latest is not None:
            return latest
        number = 1
    cycle, created = Cycle.objects.get_or_create(session=session, number=number)
    if created:
        LoopSession.objects.filter(pk=session.pk).update(cycle_count=session.cycles.count())
    return cycle


def next_cycle(session: LoopSession) -> Cycle:
    """A new cycle after the session's latest: a deployment opens one."""
    latest = session.cycles.aggregate(n=Max("number"))["n"] or 0
    return resolve_cycle(session, latest + 1)

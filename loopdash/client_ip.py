"""The client's address, as login throttling should see it.

Behind a reverse proxy every request comes from the proxy's address, so throttling
by REMOTE_ADDR would count every user's failures together. Each proxy appends the
address it saw to X-Forwarded-For; with ``LOOPDASH_PROXY_COUNT`` proxies in front,
the entry that many places from the right is the one the outermost trusted proxy
saw. Entries further left were written by the client and are never trusted.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The address of the client, trusting only the configured number of proxies."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    hops = getattr(settings, "LOOPDASH_PROXY_COUNT", 0)
    if hops <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < hops:
        # Not the chain of proxies we were told about (a probe from inside, say): use the peer.
        return remote
    return forwarded[-hops]

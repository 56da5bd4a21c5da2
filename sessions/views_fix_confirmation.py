"""Confirm a deployed fix by N reruns of its signature's tests: the signature page's button (operators, admins).

POST only (``roles.operator_required``: engineers and viewers get 403), through ``views_operate``'s
``_operate`` like every other Run button: a refusal (the fix not deployed, a confirmation already
running, N out of range, the broker down) is shown in place for HTMX, or as a small page with its
status. Accepted, it goes back to the signature page's confirmation panel, which lists the runs.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from .roles import operator_required
from .selectors.operate import signature_to_operate
from .views_operate import _operate
from .work.fix_confirmation import request_confirmation


@require_POST
@operator_required
def fix_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue the confirmation of the posted ``fix`` of signature ``pk`` by ``runs`` reruns (1 to 10, default 3)."""
    signature = signature_to_operate(pk)
    back = signature.get_absolute_url()

    def confirm() -> str:
        request_confirmation(signature, request.POST.get("fix"), request.POST.get("runs"), user=request.user)
        return f"{back}#fix-confirmations"

    return _operate(request, confirm, back=back)

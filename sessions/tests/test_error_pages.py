"""Styled error pages: a missing page, a refused one and a server error never show Django's debug page."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.views.defaults import server_error

pytestmark = pytest.mark.django_db


def test_a_missing_run_is_a_styled_404_that_lists_no_urls(client, viewer) -> None:
    client.force_login(viewer)
    response = client.get("/runs/999999/")
    body = response.content.decode()
    assert response.status_code == 404
    assert "Not found" in body and "Back to the sessions" in body
    assert "URLconf" not in body and "api/v1/" not in body  # Django's debug page lists every URL


def test_a_refused_action_is_a_styled_403_that_says_who_may(client, viewer) -> None:
    client.force_login(viewer)
    response = client.post("/sessions/anything/deploy/")
    body = response.content.decode()
    assert response.status_code == 403
    assert "Not allowed" in body and "Only operators and admins may deploy" in body and "topbar" in body


def test_a_server_error_page_needs_nothing_but_static_files() -> None:
    response = server_error(RequestFactory().get("/runs/1/"))
    body = response.content.decode()
    assert response.status_code == 500 and "Something went wrong" in body and "loopdash.css" in body

"""The HTTP API: tokens, uploads, run JSON, errors, the OpenAPI description."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from sessions.models import ApiToken, TestRun
from sessions.services.tokens import issue_token

from . import samples
from .test_ingest_storage import row_counts

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(engineer) -> str:
    return issue_token(engineer)


def upload(client, token: str, data: bytes, name: str = "results.xml", slug: str = "ci", **extra):
    return client.post(
        f"/api/v1/sessions/{slug}/runs",
        {"file": SimpleUploadedFile(name, data), **extra},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_issue_token_prints_a_token_that_is_stored_hashed(engineer, capsys):
    call_command("issue_token", engineer.username)
    token = capsys.readouterr().out.strip()
    stored = ApiToken.objects.get(user=engineer)
    assert token.startswith("ld_") and token not in stored.token_hash
    assert len(stored.token_hash) == 64


def test_an_upload_creates_a_run_and_returns_it(client, token):
    response = upload(client, token, samples.junit([("a", "ok", "passed"), ("a", "bad", "ws1011")]), cycle="2")
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= {
        "id",
        "session",
        "cycle",
        "status",
        "incomplete",
        "totals",
        "pass_rate",
        "duration_s",
        "mrr_at_risk",
        "signatures",
    }
    assert body["totals"] == {
        "tests": 2,
        "passed": 1,
        "failed": 1,
        "errors": 0,
        "skipped": 0,
        "xfailed": 0,
        "xpassed": 0,
    }
    assert body["cycle"] == 2 and body["session"] == "ci" and body["pass_rate"] == 50.0
    assert body["signatures"][0]["count"] == 1


def test_the_same_upload_twice_is_one_run(client, token):
    data = samples.junit([("a", "ok", "passed")])
    assert upload(client, token, data).status_code == 201
    again = upload(client, token, data)
    assert again.status_code == 200 and again.json()["created"] is False
    assert TestRun.objects.count() == 1


def test_a_run_is_read_back_as_json(client, token):
    run_id = upload(client, token, samples.junit([("a", "ok", "passed")])).json()["id"]
    response = client.get(f"/api/v1/runs/{run_id}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.json()["id"] == run_id
    missing = client.get("/api/v1/runs/999999", headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404 and "error" in missing.json()


@pytest.mark.parametrize("name", ["entity-bomb.xml", "not-records.jsonl", "invalid-utf8.xml", "random.bin"])
def test_a_bad_upload_is_a_4xx_and_stores_nothing(client, token, name):
    before = row_counts()
    response = upload(client, token, samples.HOSTILE[name], name)
    assert response.status_code == 400
    assert name in response.json()["error"]
    assert row_counts() == before


def test_requests_without_a_valid_token_are_refused(client, engineer):
    data = samples.junit([("a", "ok", "passed")])
    assert client.post("/api/v1/sessions/ci/runs", {"file": SimpleUploadedFile("r.xml", data)}).status_code == 401
    assert upload(client, "ld_not-a-token", data).status_code == 401
    client.force_login(engineer)  # a browser session is not an API credential
    assert client.post("/api/v1/sessions/ci/runs", {"file": SimpleUploadedFile("r.xml", data)}).status_code == 401


def test_a_missing_file_field_and_a_bad_cycle_are_explained(client, token):
    response = client.post("/api/v1/sessions/ci/runs", {}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400 and "file" in response.json()["error"]
    bad = upload(client, token, samples.junit([("a", "ok", "passed")]), cycle="zero")
    assert bad.status_code == 400 and "cycle" in bad.json()["error"]


def test_viewers_cannot_upload(client, viewer):
    token = issue_token(viewer)
    before = row_counts()
    response = upload(client, token, samples.junit([("a", "ok", "passed")]), slug="new-one")
    assert response.status_code == 403 and "viewer" in response.json()["error"]
    assert row_counts() == before


def test_the_openapi_description_lists_every_endpoint(client):
    spec = client.get("/api/v1/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/sessions/{slug}/runs",
        "/runs/{id}",
        "/sessions/{slug}/trigger",
        "/sessions/{slug}",
        "/runs/{id}/results",
        "/runs/{id}/exclude",
        "/runs/{id}/include",
        "/sessions/{slug}/runs/live",
        "/runs/{id}/finish",
        "/environments/{name}",
        "/environments/{name}/quarantine",
    }

"""Production defaults: `check --deploy` is clean with LOOPDASH_HTTPS, the HTTPS redirect spares
/healthz, every HTML page carries a Content-Security-Policy, and templates hold no inline code.

The settings are read from the environment once, at start-up, so the HTTPS behaviour is
checked in a fresh process started with the production variables, as an operator would.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import RequestFactory, override_settings

from loopdash.client_ip import client_ip

ROOT = Path(settings.BASE_DIR)


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The variables docs/PRODUCTION.md tells an operator to set, with LOOPDASH_HTTPS on."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LOOPDASH_HTTPS", "LOOPDASH_HSTS", "LOOPDASH_LOGIN"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="loopdash.settings",
        SECRET_KEY=secrets.token_urlsafe(50),
        DEBUG="0",
        ALLOWED_HOSTS="loopdash.example.com,testserver",
        CSRF_TRUSTED_ORIGINS="https://loopdash.example.com",
        LOOPDASH_HTTPS="true",
        # check --deploy does not connect; these only need to be production-shaped.
        DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        CELERY_BROKER_URL=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
        LOOPDASH_VAR_DIR=str(tmp_path / "var"),
    )
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(extra)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return manage(env, "check", "--deploy", "--fail-level", "WARNING")


def warning_ids(output: str) -> set[str]:
    return set(re.findall(r"\((\w+\.[WE]\d+)\)", output))


# -- check --deploy -----------------------------------------------------------------------------


def test_check_deploy_prints_no_warning_with_https_and_production_variables(tmp_path: Path) -> None:
    env = production_env(tmp_path, DATABASE_URL="postgres://loopdash@db.internal:5432/loopdash")
    done = deploy_check(env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "System check identified no issues" in done.stdout
    assert "WARNING" not in output and warning_ids(output) == set()


def test_check_deploy_without_https_names_each_missing_protection(tmp_path: Path) -> None:
    env = production_env(tmp_path, LOOPDASH_HTTPS="false", DATABASE_URL="postgres://loopdash@db.internal:5432/loopdash")
    done = deploy_check(env)
    assert done.returncode != 0
    # HSTS, the HTTPS redirect, secure session and CSRF cookies: what LOOPDASH_HTTPS turns on.
    assert warning_ids(done.stdout + done.stderr) == {
        "security.W004",
        "security.W008",
        "security.W012",
        "security.W016",
    }


def test_check_deploy_warns_about_the_development_key_and_an_embedded_setup(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["SECRET_KEY"]
    env.pop("CELERY_BROKER_URL")
    done = deploy_check(env)
    found = warning_ids(done.stdout + done.stderr)
    assert done.returncode != 0
    # loopdash's own checks: the development key, SQLite, the filesystem broker; Django's: a weak key.
    assert {"loopdash.W001", "loopdash.W002", "loopdash.W003", "security.W009"} <= found


def test_hsts_preload_can_be_turned_off_and_check_deploy_says_so(tmp_path: Path) -> None:
    env = production_env(tmp_path, LOOPDASH_HSTS_PRELOAD="false", DATABASE_URL="postgres://db.internal/loopdash")
    done = deploy_check(env)
    assert warning_ids(done.stdout + done.stderr) == {"security.W021"}


def test_a_malformed_https_flag_is_refused_at_start_up(tmp_path: Path) -> None:
    done = manage(production_env(tmp_path, LOOPDASH_HTTPS="sometimes"), "check")
    assert done.returncode != 0
    assert "LOOPDASH_HTTPS='sometimes' is not a boolean" in done.stderr


# -- HTTPS behaviour in a real process ----------------------------------------------------------

PROBE = r"""
import json, django
django.setup()
from django.test import Client
out = {}
plain = Client()
r = plain.get("/sessions/missing/")
out["plain_page"] = [r.status_code, r.headers.get("Location")]
r = plain.get("/healthz")
out["plain_healthz"] = [r.status_code, r.headers.get("Location")]
secure = Client(headers={"X-Forwarded-Proto": "https"})
r = secure.get("/accounts/login/")
out["login"] = [r.status_code, r.headers.get("Strict-Transport-Security"), r.headers.get("Content-Security-Policy")]
out["csrf_cookie_secure"] = bool(r.cookies["csrftoken"]["secure"])
out["redirect_exempt"] = __import__("django.conf").conf.settings.SECURE_REDIRECT_EXEMPT
out["session_cookie_secure"] = __import__("django.conf").conf.settings.SESSION_COOKIE_SECURE
print("PROBE " + json.dumps(out))
"""


def run_probe(env: dict[str, str]) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE "))


def test_https_redirects_plain_http_but_not_healthz_and_sends_hsts_and_secure_cookies(tmp_path: Path) -> None:
    out = run_probe(production_env(tmp_path))
    assert out["plain_page"] == [301, "https://testserver/sessions/missing/"]
    # Probes inside the network reach /healthz over plain HTTP: 200 or 503, never a redirect.
    assert out["plain_healthz"][0] in (200, 503) and out["plain_healthz"][1] is None
    status, hsts, csp = out["login"]
    assert status == 200, "behind the proxy (X-Forwarded-Proto: https) the page is served, not redirected"
    assert hsts == "max-age=31536000; includeSubDomains; preload"
    assert "script-src 'self'" in csp
    assert out["csrf_cookie_secure"] is True and out["session_cookie_secure"] is True


def test_without_https_nothing_redirects_and_no_hsts(tmp_path: Path) -> None:
    out = run_probe(production_env(tmp_path, LOOPDASH_HTTPS="0"))
    assert out["plain_page"][0] == 302  # to the login page, over plain HTTP
    assert out["login"][1] is None
    assert out["csrf_cookie_secure"] is False and out["session_cookie_secure"] is False


# -- the Content-Security-Policy ----------------------------------------------------------------


def csp_directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


@pytest.mark.django_db
def test_every_html_page_carries_a_policy_without_inline_script(client, admin_user) -> None:
    login = client.get("/accounts/login/")
    client.force_login(admin_user)
    pages = [login, client.get("/"), client.get("/admin/"), client.get("/admin/loop_sessions/apitoken/add/")]
    for response in pages:
        assert response.status_code == 200
        policy = csp_directives(response.headers["Content-Security-Policy"])
        assert policy["default-src"] == ["'self'"]
        assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
        assert "'unsafe-inline'" not in policy["style-src"]
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]


@pytest.mark.django_db
def test_the_htmx_script_carries_the_request_nonce(client) -> None:
    response = client.get("/accounts/login/")
    nonce = re.search(r"'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1)
    assert f'nonce="{nonce}"' in response.content.decode()
    # A new nonce for every response.
    again = client.get("/accounts/login/").headers["Content-Security-Policy"]
    assert f"'nonce-{nonce}'" not in again


INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)


def test_templates_hold_no_inline_script_or_event_handler() -> None:
    """Inline code would be refused by the policy: code lives in static/js, data in json_script."""
    offenders = []
    for path in sorted((ROOT / "templates").rglob("*.html")) + sorted((ROOT / "sessions").rglob("templates/**/*.html")):
        text = path.read_text()
        for match in SCRIPT_TAG.finditer(text):
            attrs = match.group(1)
            if "src=" not in attrs and "csp_nonce" not in attrs:
                offenders.append(f"{path.relative_to(ROOT)}: inline <script{attrs}>")
        for match in INLINE_HANDLER.finditer(text):
            offenders.append(f"{path.relative_to(ROOT)}: inline event handler {match.group(0)[-40:]!r}")
        if "<style" in text and "csp_nonce" not in text:
            offenders.append(f"{path.relative_to(ROOT)}: <style> element without the nonce")
    assert offenders == []


# -- the client address behind proxies ----------------------------------------------------------


def _request(forwarded: str | None = None):
    extra = {"REMOTE_ADDR": "10.1.2.3"}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


def test_client_ip_is_the_peer_when_no_proxy_is_configured() -> None:
    assert client_ip(_request("198.51.100.7")) == "10.1.2.3"


@override_settings(LOOPDASH_PROXY_COUNT=1)
def test_client_ip_behind_one_proxy_is_what_that_proxy_saw_not_what_the_client_claims() -> None:
    assert client_ip(_request("6.6.6.6, 198.51.100.7")) == "198.51.100.7"
    assert client_ip(_request()) == "10.1.2.3"  # a probe from inside, past the proxy


@override_settings(LOOPDASH_PROXY_COUNT=2)
def test_client_ip_behind_two_proxies() -> None:
    assert client_ip(_request("6.6.6.6, 198.51.100.7, 10.0.0.2")) == "198.51.100.7"
    assert client_ip(_request("10.0.0.2")) == "10.1.2.3"


def test_base_html_marks_the_map_css_that_the_pinned_plotly_would_inject() -> None:
    """plotly.js skips its maplibre <style> when an element with this id exists (see base.html)."""
    import plotly

    marker = re.search(r'name="loopdash-no-map-css" id="([0-9a-f]{64})"', (ROOT / "templates/base.html").read_text())
    bundle = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text()
    assert marker and f'document.getElementById("{marker.group(1)}")' in bundle

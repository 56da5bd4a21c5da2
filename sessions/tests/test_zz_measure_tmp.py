import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from sessions.tests.test_pages import *  # noqa
from sessions.tests.test_pages import ingest, mixed_cases, page_urls

@pytest.mark.django_db
@pytest.mark.parametrize("size", [10, 2000])
def test_measure(client, viewer, impact, size):
    client.force_login(viewer)
    ingest(mixed_cases(size), cycle=1, label="first")
    run = ingest(mixed_cases(size, prefix="test_more"), cycle=2, label="second")
    urls = page_urls(run)
    urls["run_detail_htmx"] = urls["run_detail"]
    for name, url in urls.items():
        headers = {"HX-Request": "true"} if name == "run_detail_htmx" else {}
        query = {"outcome": "failed", "q": "p1", "priority": "P1"} if name == "run_detail_htmx" else {}
        with CaptureQueriesContext(connection) as ctx:
            client.get(url, query, headers=headers)
        print(size, name, len(ctx.captured_queries))
        if size == 10 and name in ("run_detail", "session_detail"):
            for q in ctx.captured_queries: print("   ", q["sql"][:230])

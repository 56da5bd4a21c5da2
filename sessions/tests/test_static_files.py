"""Static files are compressed and cacheable: plotly.js, the heaviest, is served as brotli or gzip with a
ten-year max-age under its hashed name once ``collectstatic`` has run, and the pages name that file."""

from __future__ import annotations

import gzip
from pathlib import Path

import brotli
import pytest
from django.contrib.staticfiles import finders
from django.core.files import File
from django.core.files.storage import FileSystemStorage
from django.templatetags.static import static
from django.test import Client, override_settings

from loopdash.staticstorage import CompressedStaticStorage

PLOTLY = "vendor/plotly.min.js"
TEN_YEARS = "max-age=315360000"


def collect_plotly(root: Path) -> str:
    """What ``collectstatic`` does for plotly.js (hash, manifest, .gz and .br copies), and its hashed name."""
    source = Path(finders.find(PLOTLY))
    storage = CompressedStaticStorage(location=str(root), base_url="/static/")
    with source.open("rb") as handle:
        storage.save(PLOTLY, File(handle))
    origin = FileSystemStorage(location=str(source.parent))
    moved = {PLOTLY: (_Prefixed(origin), PLOTLY)}
    for _name, _hashed, processed in storage.post_process(moved):
        if isinstance(processed, Exception):
            raise processed
    return CompressedStaticStorage(location=str(root), base_url="/static/").stored_name(PLOTLY)


class _Prefixed:
    """The plotly package's folder seen as ``vendor/``, as loopdash.staticfinders.PlotlyFinder lists it."""

    def __init__(self, storage: FileSystemStorage) -> None:
        self.storage = storage

    def open(self, path: str, mode: str = "rb") -> File:
        return self.storage.open(path.removeprefix("vendor/"), mode)

    def path(self, path: str) -> str:
        return self.storage.path(path.removeprefix("vendor/"))


@pytest.mark.django_db
def test_plotly_is_served_compressed_with_a_long_max_age(tmp_path: Path, viewer) -> None:
    raw = Path(finders.find(PLOTLY)).read_bytes()
    hashed = collect_plotly(tmp_path)
    assert hashed != PLOTLY and hashed.startswith("vendor/plotly.min.") and hashed.endswith(".js")
    with override_settings(STATIC_ROOT=tmp_path, WHITENOISE_USE_FINDERS=False):
        assert static(PLOTLY) == f"/static/{hashed}"  # what {% static %} writes into the pages
        client = Client()
        client.force_login(viewer)
        url = f"/static/{hashed}"
        for encoding, decode in (("br", brotli.decompress), ("gzip", gzip.decompress)):
            response = client.get(url, headers={"Accept-Encoding": f"{encoding}"})
            assert response.status_code == 200
            assert response["Content-Encoding"] == encoding
            assert TEN_YEARS in response["Cache-Control"] and "immutable" in response["Cache-Control"]
            body = b"".join(response.streaming_content)
            assert len(body) < len(raw) / 3 and decode(body) == raw
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain and int(plain["Content-Length"]) == len(raw)


def test_without_collectstatic_pages_name_the_plain_file() -> None:
    """Tests and a bare runserver have no manifest: the storage names the plain file (served by the finders)."""
    storage = CompressedStaticStorage(location="/nonexistent-static-root", base_url="/static/")
    assert storage.url(PLOTLY) == f"/static/{PLOTLY}"

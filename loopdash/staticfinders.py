"""Serve plotly.js straight from the installed plotly package.

One source of truth: no 4.8 MB copy in the repository to keep in step with the
Python package, and never a CDN. Only the one file is exposed, as
``vendor/plotly.min.js``; collectstatic copies it like any other static file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import plotly
from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PREFIX = "vendor"
NAME = "plotly.min.js"
BUNDLE_DIR = Path(plotly.__file__).parent / "package_data"


class PlotlyFinder(BaseFinder):
    def find(self, path: str, find_all: bool = False, **kwargs: object) -> str | list[str]:
        if path == f"{PREFIX}/{NAME}" and (BUNDLE_DIR / NAME).is_file():
            found = str(BUNDLE_DIR / NAME)
            return [found] if find_all else found
        return [] if find_all else ""

    def list(self, ignore_patterns: list[str] | None) -> Iterator[tuple[str, FileSystemStorage]]:
        storage = FileSystemStorage(location=str(BUNDLE_DIR))
        storage.prefix = PREFIX
        yield NAME, storage

"""Files workers write under ``MEDIA_ROOT`` (logs, result files), as this machine sees them.

Shared by the pages that serve a whole log and by retention, which deletes old ones: both must touch a
file only when it lies inside ``MEDIA_ROOT``, whatever path a row holds (absolute, relative, or with
``..`` in it).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def local_file(path: str) -> Path | None:
    """The file at ``path`` (relative: to MEDIA_ROOT) when it is on this machine, under MEDIA_ROOT."""
    if not path:
        return None
    media = Path(settings.MEDIA_ROOT).resolve()
    file = Path(path)
    file = (file if file.is_absolute() else media / file).resolve()
    if not file.is_relative_to(media) or not file.is_file():
        return None
    return file

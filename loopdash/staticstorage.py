"""Static files: hashed names and compressed copies once ``collectstatic`` has run, plain names before.

``collectstatic`` (run by ``make run`` and by docker-compose's web service) writes each file under a name
holding a hash of its content, plus gzip and brotli copies, into ``STATIC_ROOT``; WhiteNoise then serves
the compressed copy the browser accepts and marks hashed files cacheable for ten years (a new content is
a new name). Without a manifest (tests, a bare ``manage.py runserver``) pages name the plain files, which
WhiteNoise finds through the static finders, uncompressed and briefly cached: nothing needs
``collectstatic`` to work, only to be fast.
"""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class CompressedStaticStorage(CompressedManifestStaticFilesStorage):
    def stored_name(self, name: str) -> str:
        """The hashed name from the manifest, or ``name`` itself when the manifest does not list it."""
        try:
            return super().stored_name(name)
        except ValueError:  # no manifest yet, or a file added since the last collectstatic
            return name

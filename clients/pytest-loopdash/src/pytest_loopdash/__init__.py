"""pytest-loopdash: stream pytest results to loopdash while the suite runs (see ``plugin``)."""

__version__ = "0.1.0"

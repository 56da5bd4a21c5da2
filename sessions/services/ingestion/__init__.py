"""Storing test results: the writer that runs and uploads share, its two storage engines, and uploads.

Import from the module that defines a name (``writer.ResultWriter``, ``upload.ingest_file``,
``cycles.resolve_cycle``...); this package re-exports nothing.
"""

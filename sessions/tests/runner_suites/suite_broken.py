"""Fails at import time, so pytest reports a collection error for this file."""

import loopdash_module_that_does_not_exist  # noqa: F401


def test_never_runs():
    pass

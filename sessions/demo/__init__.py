"""Data to look at and to measure with, made through the same paths as real work.

``loader`` loads the demo session (real pytest results of examples/staging, ``manage.py load_demo``);
``history`` generates a long fake loop history (``manage.py generate_history``, the benchmarks), from
the suite of ``history_suite`` and the result files of ``history_files``.
"""

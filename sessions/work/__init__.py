"""Running deploys and test runs on Celery workers, and ending every row they leave behind.

``queueing`` writes queued rows and sends tasks; ``deploy`` and ``run_execution`` are the worker
side; ``cancel`` stops work; ``reaper`` ends what a dead worker or a lost message left; ``locks``
keeps one deploy at a time per environment; ``runners`` is the subprocess edge (process groups, the
process guard, supervision); ``runner_plugins`` are files copied next to a command. See
docs/WORKERS.md.
"""

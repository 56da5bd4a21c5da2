"""Entry point: ``python -m service --revision r3 --port 8765`` (cwd = examples/staging or a release).

deploy.py starts exactly this command, detached; it can also be run in the
foreground while debugging.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys

from .revisions import get_revision
from .server import run_service
from .service_log import configure_logging
from .settings import Settings

EXIT_UNKNOWN_REVISION = 2
EXIT_CANNOT_LISTEN = 3


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, pick the revision and serve until signalled."""
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--revision", default=os.environ.get("STAGING_REVISION", "r1"))
    parser.add_argument("--commit", help="the commit deployed (default: the one revisions.json names)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("STAGING_PORT", "8765")))
    args = parser.parse_args(argv)
    try:
        rev = get_revision(args.revision)
        if args.commit:
            rev = dataclasses.replace(rev, commit=args.commit)
    except (KeyError, ValueError) as exc:
        print(f"service: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_UNKNOWN_REVISION
    configure_logging()
    try:
        asyncio.run(run_service(rev, Settings.from_env(args.host, args.port)))
    except OSError as exc:
        print(f"service: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

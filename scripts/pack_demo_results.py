"""Rebuild sessions/demo_results/ from real runs of the example staging target.

    .venv/bin/python examples/staging/make_results.py --out /tmp/demo-res --revisions r1,r2,r3,r4,r5,r6,r7 \
        --port 23457 --pytest-arg=--tb=short
    .venv/bin/python scripts/pack_demo_results.py /tmp/demo-res

Each cycle keeps its P1 run as JUnit XML and its full run as a pytest report-log, both gzipped,
so that the demo exercises both formats through the real ingest path.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

DEST = Path(__file__).resolve().parent.parent / "sessions" / "demo_results"


def main(source: Path) -> None:
    manifest = json.loads((source / "manifest.json").read_text())
    if DEST.exists():
        shutil.rmtree(DEST)
    DEST.mkdir(parents=True)
    cycles = []
    for cycle in manifest["cycles"]:
        folder = source / cycle["name"]
        files = []
        for src, name in (
            (folder / "p1.junit.xml", f"{cycle['name']}-p1.xml.gz"),
            (folder / "full.reportlog.jsonl", f"{cycle['name']}-e2e.jsonl.gz"),
        ):
            (DEST / name).write_bytes(gzip.compress(src.read_bytes(), compresslevel=9, mtime=0))
            files.append(name)
        cycles.append(
            {
                "cycle": cycle["cycle"],
                "revision": cycle["revision"],
                "files": files,
                "counts": {r["name"]: r["counts"] for r in cycle["runs"]},
            }
        )
    (DEST / "manifest.json").write_text(
        json.dumps({"generated_at": manifest["generated_at"], "cycles": cycles}, indent=1)
    )
    print(f"packed {len(cycles)} cycles into {DEST}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""Links the CLI prints follow the port ``make run`` serves: scripts/run.sh writes its address to
``<var>/served-url`` while it serves (``make run PORT=8123``), and the settings read it when
``LOOPDASH_BASE_URL`` is not set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

PRINT_BASE_URL = "import django; django.setup(); from django.conf import settings; print(settings.LOOPDASH_BASE_URL)"


def base_url(var_dir: Path, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "LOOPDASH_BASE_URL"}
    clean |= {"LOOPDASH_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "loopdash.settings", **env}
    done = subprocess.run(
        [sys.executable, "-c", PRINT_BASE_URL],
        env=clean,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def test_the_cli_links_follow_the_served_port(tmp_path: Path) -> None:
    assert base_url(tmp_path) == "http://127.0.0.1:8000"  # nothing served: the default
    (tmp_path / "served-url").write_text("http://127.0.0.1:8123\n")
    assert base_url(tmp_path) == "http://127.0.0.1:8123"
    assert base_url(tmp_path, LOOPDASH_BASE_URL="https://loopdash.example") == "https://loopdash.example"


def test_run_sh_serves_on_port_and_writes_what_it_serves() -> None:
    script = (Path(settings.BASE_DIR) / "scripts" / "run.sh").read_text()
    assert "PORT=${PORT:-8000}" in script
    assert 'runserver "127.0.0.1:$PORT"' in script
    assert 'echo "$LOOPDASH_BASE_URL" >"$VAR/served-url"' in script and 'rm -f "$VAR/served-url"' in script

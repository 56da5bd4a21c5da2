#!/usr/bin/env bash
# Print the path of the newest Python 3.12+ found: PATH first, then pyenv's versions.
# pyenv's bare `python3.12` shim fails unless PYENV_VERSION names it, so every
# candidate is actually run before it is chosen.
set -u
best=""
best_ver=0
try() {
  local exe=$1 ver
  ver=$("$exe" -c 'import sys; print(sys.version_info[0]*100+sys.version_info[1]) if sys.version_info >= (3, 12) else print(0)' 2>/dev/null) || return 0
  if [ -n "$ver" ] && [ "$ver" -gt "$best_ver" ]; then best=$exe; best_ver=$ver; fi
}
for name in python3.14 python3.13 python3.12 python3 python; do
  exe=$(command -v "$name" 2>/dev/null) && try "$exe"
done
roots=()
command -v pyenv >/dev/null 2>&1 && roots+=("$(pyenv root 2>/dev/null)")
roots+=("${PYENV_ROOT:-$HOME/.pyenv}")
for root in "${roots[@]}"; do
  for exe in "$root"/versions/3.1[2-9]*/bin/python3 "$root"/versions/3.[2-9][0-9]*/bin/python3; do
    [ -x "$exe" ] && try "$exe"
  done
done
if [ -z "$best" ]; then
  echo "loopdash needs Python 3.12 or newer (Django 6); none found on PATH or in pyenv's versions." >&2
  echo "Install one (e.g. 'pyenv install 3.13') and run make again." >&2
  exit 1
fi
echo "$best"

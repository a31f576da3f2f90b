# Shared by scripts/test and scripts/watch-demo: a project virtualenv with deeplearn installed.
# shellcheck shell=bash
VENV="${DEEPLEARN_VENV:-$PWD/.venv}"
PYTHON="${PYTHON:-python3}"

ensure_venv() {  # $1: the pip requirement to install, e.g. '.[test]'
  local want="$1" stamp="$VENV/.deeplearn-installed"
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
  fi
  # Reinstall when the requested extras or pyproject.toml changed since the last install.
  local key; key="$want $(cksum pyproject.toml | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$key" ]; then
    "$VENV/bin/python" -m pip install -q -e "$want" || return 1
    echo "$key" > "$stamp"
  fi
}

ensure_chromium() {  # Debian's Chromium for the Playwright browser test (no browser download)
  if command -v chromium >/dev/null 2>&1; then return 0; fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else return 1; fi
  fi
  if command -v apt-get >/dev/null 2>&1; then
    ($sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || return 1
    command -v chromium >/dev/null 2>&1
  else
    return 1
  fi
}

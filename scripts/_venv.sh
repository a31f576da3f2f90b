# Shared by scripts/test and scripts/watch-demo: a project virtualenv with deeplearn installed.
# shellcheck shell=bash
VENV="${DEEPLEARN_VENV:-$PWD/.venv}"
PYTHON="${PYTHON:-python3}"

ensure_venv() {  # $@: the extras to install besides the library, e.g. test train (none: the library alone)
  local stamp="$VENV/.deeplearn-installed" sum have missing=0 extra
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
  fi
  # The stamp holds pyproject.toml's checksum and the extras installed with it. Install again only
  # when pyproject.toml changed or an extra asked for now is not among those (so watch-demo, which
  # needs fewer extras, does not reinstall after scripts/test, nor the other way round).
  sum="$(cksum pyproject.toml | cut -d' ' -f1)"
  have="$(cat "$stamp" 2>/dev/null || true)"
  if [ "${have%% *}" != "$sum" ]; then have="$sum"; missing=1; fi
  for extra in "$@"; do
    case " $have " in *" $extra "*) ;; *) have="$have $extra"; missing=1 ;; esac
  done
  if [ "$missing" = 1 ]; then
    local extras; extras="$(echo "${have#* }" | tr ' ' ',')"
    [ "$have" = "$sum" ] && extras=""
    "$VENV/bin/python" -m pip install -q -e ".${extras:+[$extras]}" || return 1
    echo "$have" > "$stamp"
  fi
}

ensure_chromium() {  # Debian's Chromium for the Playwright browser tests (no browser download)
  if command -v chromium >/dev/null 2>&1; then return 0; fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else return 1; fi
  fi
  if command -v apt-get >/dev/null 2>&1; then
    # Chromium alone: its recommended packages (about 130, fonts and desktop integration) are not
    # needed to drive it headless.
    ($sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends chromium >/dev/null) || return 1
    command -v chromium >/dev/null 2>&1
  else
    return 1
  fi
}

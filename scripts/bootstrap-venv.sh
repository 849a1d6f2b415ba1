#!/usr/bin/env bash
# Create the virtual environment and install pinned dependencies plus Mend's own packages.
set -euo pipefail
venv=${1:-.venv}
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "Mend needs Python 3.11 or newer ($python is older or missing)" >&2
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-dev >/dev/null
    python=python3
  else
    exit 1
  fi
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv" || {
    # Debian ships venv separately.
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && "$python" -m venv "$venv"
    else
      exit 1
    fi
  }
fi
"$venv/bin/pip" install -q --upgrade 'pip>=23' 'setuptools<82' wheel
"$venv/bin/pip" install -q -r requirements.lock
# Editable installs: entry points (mend-api, mend-worker, the mend CLI, service discovery)
# point at the working tree.
"$venv/bin/pip" install -q --no-deps --no-build-isolation \
  -e services/common -e services/referrals -e services/cases -e services/risk -e services/notifications -e services/scheduling -e cli
# Generated gRPC stubs live in build/gen.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$(pwd)/build/gen" > "$site/mend-proto-stubs.pth"

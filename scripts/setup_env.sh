#!/usr/bin/env bash
# Sets up a fresh machine: Debian EGL packages (headless MuJoCo rendering) and a pinned virtualenv.
set -euo pipefail
VENV=${VENV:-.venv}
PY=${PYTHON:-python3.11}
need_apt=0
for p in libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0; do
  dpkg -s "$p" >/dev/null 2>&1 || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0 >/dev/null
  else
    echo "missing EGL packages: sudo apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri libopengl0" >&2
    exit 2
  fi
fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
# torch==2.13.0 first: the CPU wheel; a bare torch requirement would pull a CUDA build.
"$VENV/bin/pip" install -q "torch==2.13.0"
"$VENV/bin/pip" install -q -e ".[dev]"
touch "$VENV/.setup-done"

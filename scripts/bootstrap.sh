#!/usr/bin/env bash
# Make .venv with bwv and its test tools installed. Needs only python3; installs what a fresh
# Debian machine lacks (python3-venv, ffmpeg for ffprobe) when it can (root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
if [ "${1:-}" = "--with-test-tools" ]; then
  # ffprobe checks the recordings; PortAudio's headers and a compiler build pyaudio, whose
  # real capture path the tests run through an ALSA file device
  command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
  [ -e /usr/include/portaudio.h ] || need_apt+=(portaudio19-dev)
  command -v gcc >/dev/null || need_apt+=(gcc)
  python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || need_apt+=(python3-dev)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "bootstrap: installing ${need_apt[*]} with apt-get" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: please install: ${need_apt[*]}" >&2
    exit 1
  fi
fi

stamp=.venv/.bwv-installed
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi

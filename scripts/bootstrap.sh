#!/usr/bin/env bash
# Make .venv with bwv installed, saying what it does step by step.
#
#   scripts/bootstrap.sh                    bwv and what it runs on (make sim): needs only
#                                           python3 and the openssl command (the raid's
#                                           time-stamping authority signs with `openssl ts`;
#                                           Debian has it wherever ca-certificates is);
#                                           every Python dependency comes as a wheel
#   scripts/bootstrap.sh --with-test-tools  also the test tools and pyaudio (make test), with
#                                           what they need from apt: ffmpeg (ffprobe),
#                                           portaudio19-dev, gcc and python3-dev (pyaudio has
#                                           no Linux wheel and is built here), and chromium
#                                           (the verifier page's tests drive it); and the
#                                           fleet extra (boto3, psycopg) and the servers the
#                                           fleet tests start (Ceph's ceph-mon, ceph-osd,
#                                           radosgw; postgresql-15); and the TPM tests'
#                                           software TPM (swtpm, swtpm-tools) and what
#                                           tpm2-pytss builds against (libtss2-dev,
#                                           pkg-config)
#
# Installs what a fresh Debian machine lacks with apt-get when it can (root or sudo). Does
# nothing when .venv is already up to date.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'bwv set-up: %s\n' "$*" >&2; }

with_tests=0
case "${1:-}" in
  "") ;;
  --with-test-tools) with_tests=1 ;;
  *) echo "bootstrap.sh: unknown option: $1 (only --with-test-tools)" >&2; exit 2 ;;
esac

need_apt=()
python3 -c 'import ensurepip, venv' 2>/dev/null || need_apt+=(python3-venv)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ "$with_tests" -eq 1 ]; then
  command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
  [ -e /usr/include/portaudio.h ] || need_apt+=(portaudio19-dev)
  command -v gcc >/dev/null || need_apt+=(gcc)
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)  # the verifier page's browser tests
  command -v radosgw >/dev/null || need_apt+=(ceph-mon ceph-osd radosgw ceph-common)  # S3
  [ -x /usr/lib/postgresql/15/bin/initdb ] || need_apt+=(postgresql-15)  # the shared index
  command -v swtpm_setup >/dev/null || need_apt+=(swtpm swtpm-tools)  # the TPM tests' TPM
  [ -e /usr/include/tss2/tss2_esys.h ] || need_apt+=(libtss2-dev)  # tpm2-pytss builds on it
  command -v pkg-config >/dev/null || need_apt+=(pkg-config)
  python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || need_apt+=(python3-dev)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    say "installing ${need_apt[*]} with apt-get"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    say "please install ${need_apt[*]} first (no apt-get here)"
    exit 1
  fi
fi

pip_install() {
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-input "$@" || {
    say "pip could not install $* (its messages are above)"
    exit 1
  }
}

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
# a stamp per set installed: a changed pyproject.toml installs again
stale() { [ ! -f "$1" ] || [ pyproject.toml -nt "$1" ]; }
base_stamp=.venv/.bwv-installed
test_stamp=.venv/.bwv-installed-test-tools
if [ "$with_tests" -eq 1 ] && stale "$test_stamp"; then
  say "installing bwv, its dependencies and the test tools (pytest, hypothesis, ruff," \
    "schemathesis, pyaudio, tpm2-pytss; boto3 and psycopg for the fleet tests) into .venv" \
    "(a minute or two the first time)"
  pip_install -e '.[dev,fleet]'
  touch "$base_stamp" "$test_stamp"
  say ".venv is ready"
elif stale "$base_stamp"; then
  say "installing bwv and its dependencies into .venv (about a minute the first time)"
  pip_install -e .
  touch "$base_stamp"
  say ".venv is ready"
fi

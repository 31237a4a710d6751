#!/usr/bin/env bash
# Install bwv on Raspberry Pi OS (Bookworm or later) as a hardened systemd service.
#
#   sudo ./install.sh            install or upgrade (safe to run again: it is idempotent)
#   ./install.sh --dry-run       print what it would do, change nothing
#   sudo ./install.sh --dock     also install the dock service (on the dock machine)
#
# It installs python3-picamera2 and python3-pyaudio from apt (picamera2 needs the apt-only
# libcamera bindings), makes a virtual environment with --system-site-packages in
# /opt/bwv/venv, installs bwv into it, creates the 'bwv' service user, installs the units,
# and leaves /etc/bwv/bwv.toml alone if it exists. Keys are made by 'bwv provision', never
# here.
set -euo pipefail

PREFIX=/opt/bwv
VENV="$PREFIX/venv"
ETC=/etc/bwv
UNIT_DIR=/etc/systemd/system
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DRY_RUN=0
WITH_DOCK=0

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }

for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --dock) WITH_DOCK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

run() {
  if [ "$DRY_RUN" -eq 1 ]; then
    printf 'would run:'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

say() { printf '==> %s\n' "$*"; }

if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo ./install.sh), or with --dry-run" >&2
  exit 1
fi

say "apt packages"
APT_PACKAGES=(python3-venv python3-picamera2 python3-pyaudio python3-rpi-lgpio)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  run apt-get update
  run apt-get install -y "${missing[@]}"
else
  say "all present: ${APT_PACKAGES[*]}"
fi

say "service user"
if id bwv >/dev/null 2>&1; then
  say "user bwv exists"
else
  run useradd --system --home-dir /var/lib/bwv --no-create-home --shell /usr/sbin/nologin bwv
fi
for g in video audio gpio; do
  if getent group "$g" >/dev/null 2>&1; then
    run usermod -a -G "$g" bwv
  fi
done

say "state directory /var/lib/bwv (keys, outbox; owned by bwv, private)"
run install -d -m 0700 -o bwv -g bwv /var/lib/bwv /var/lib/bwv/keys

say "virtual environment in $VENV (with system site packages, for picamera2)"
if [ ! -x "$VENV/bin/python" ]; then
  run mkdir -p "$PREFIX"
  run python3 -m venv --system-site-packages "$VENV"
fi
run "$VENV/bin/python" -m pip install --quiet --upgrade "$SRC"

say "configuration in $ETC"
run install -d -m 0750 -o root -g bwv "$ETC"
if [ -e "$ETC/bwv.toml" ]; then
  say "$ETC/bwv.toml exists: left as it is"
else
  run install -m 0640 -o root -g bwv "$SRC/systemd/bwv.example.toml" "$ETC/bwv.toml"
fi

say "systemd units"
run install -m 0644 "$SRC/systemd/bwv.service" "$UNIT_DIR/bwv.service"
units=(bwv.service)
if [ "$WITH_DOCK" -eq 1 ]; then
  if ! id bwv-dock >/dev/null 2>&1; then
    run useradd --system --home-dir /var/lib/bwv-dock --no-create-home \
      --shell /usr/sbin/nologin bwv-dock
  fi
  run install -m 0644 "$SRC/systemd/bwv-dock.service" "$UNIT_DIR/bwv-dock.service"
  units+=(bwv-dock.service)
fi
run systemctl daemon-reload
run systemctl enable "${units[@]}"

say "done. Next: sudo -u bwv $VENV/bin/bwv provision ... (see README, technician's guide)"

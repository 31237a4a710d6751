#!/usr/bin/env bash
# Install bwv as a hardened systemd service: on a camera (Raspberry Pi OS, Bookworm or later),
# or with --dock on the dock machine (plain Debian 12 or later is enough).
#
#   sudo ./install.sh            a camera: install or upgrade (idempotent: safe to run again)
#   sudo ./install.sh --dock     the dock alone: no camera packages, no bwv.service
#   sudo ./install.sh --tpm      a camera with a TPM 2.0 module on its SPI header (Infineon
#                                SLB 9670): also enables dtoverlay=tpm-slb9670 (reboot after)
#   ./install.sh --dry-run       print what it would do, change nothing (with or without --dock)
#
# A camera: python3-picamera2, python3-pyaudio and python3-rpi-lgpio from apt (picamera2 needs
# the apt-only libcamera bindings), a virtual environment with --system-site-packages in
# /opt/bwv/venv with bwv in it, the 'bwv' service user, /etc/bwv/bwv.toml (left alone if it
# exists) and bwv.service, enabled; the TPM stack (tpm2-tools, and tpm2-pytss built into the
# environment: `bwv provision --key-store tpm`). The dock: python3-venv from apt, the same virtual
# environment (bwv's dependencies all come as wheels), the 'bwv-dock' user and
# bwv-dock.service, enabled. Keys are made by 'bwv provision' and the dock, never here.
set -euo pipefail

PREFIX=/opt/bwv
VENV="$PREFIX/venv"
ETC=/etc/bwv
UNIT_DIR=/etc/systemd/system
SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DRY_RUN=0
WITH_DOCK=0
WITH_TPM=0

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --dock) WITH_DOCK=1 ;;
    --tpm) WITH_TPM=1 ;;
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

apt_packages() {
  say "apt packages: $*"
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    run apt-get update
    run apt-get install -y "${missing[@]}"
  else
    say "all present"
  fi
}

system_user() {  # NAME HOME
  if id "$1" >/dev/null 2>&1; then
    say "user $1 exists"
  else
    run useradd --system --home-dir "$2" --no-create-home --shell /usr/sbin/nologin "$1"
  fi
}

venv_with_bwv() {  # [--system-site-packages [EXTRAS]]
  say "virtual environment in $VENV${1:+ (with system site packages, for picamera2)}"
  if [ ! -x "$VENV/bin/python" ]; then
    run mkdir -p "$PREFIX"
    run python3 -m venv ${1:+"$1"} "$VENV"
  elif [ -n "${1:-}" ] && ! grep -qs '^include-system-site-packages = true' "$VENV/pyvenv.cfg"
  then  # made by a dock install on the same machine: let it see picamera2 too
    run python3 -m venv ${1:+"$1"} "$VENV"
  fi
  run "$VENV/bin/python" -m pip install --quiet --upgrade "$SRC${2:-}"
}

enable_units() {  # UNIT...
  say "systemd units: $*"
  local u
  for u in "$@"; do
    run install -m 0644 "$SRC/systemd/$u" "$UNIT_DIR/$u"
  done
  run systemctl daemon-reload
  run systemctl enable "$@"
}

install_dock() {
  apt_packages python3-venv
  say "service user bwv-dock (its store /var/lib/bwv-dock is made by systemd, private)"
  system_user bwv-dock /var/lib/bwv-dock
  venv_with_bwv
  enable_units bwv-dock.service
  say "done. Next: sudo systemctl start bwv-dock; then bwv dock token (technician's guide, 9)"
}

tpm_overlay() {  # the SLB 9670 on SPI0 CE1: the kernel's tpm_tis_spi driver, /dev/tpmrm0
  local cfg=/boot/firmware/config.txt
  [ -e "$cfg" ] || cfg=/boot/config.txt
  if grep -qs '^dtoverlay=tpm-slb9670' "$cfg"; then
    say "dtoverlay=tpm-slb9670 already in $cfg"
  else
    say "enabling the TPM module: dtparam=spi=on and dtoverlay=tpm-slb9670 in $cfg (reboot after)"
    if [ "$DRY_RUN" -eq 1 ]; then
      printf 'would run: append dtparam=spi=on and dtoverlay=tpm-slb9670 to %s\n' "$cfg"
    else
      printf '\n# bwv: TPM 2.0 module (install.sh --tpm)\ndtparam=spi=on\ndtoverlay=tpm-slb9670\n' >>"$cfg"
    fi
  fi
}

install_camera() {
  apt_packages python3-venv python3-picamera2 python3-pyaudio python3-rpi-lgpio
  # the TPM stack: tpm2-tools (and with it the tss group that owns /dev/tpmrm0), and what
  # tpm2-pytss builds with (Debian's python3-tpm2-pytss does not work with the cryptography
  # bwv needs)
  apt_packages tpm2-tools libtss2-dev pkg-config gcc python3-dev
  if [ "$WITH_TPM" -eq 1 ]; then
    tpm_overlay
  fi
  say "service user bwv"
  system_user bwv /var/lib/bwv
  local g
  for g in video audio gpio tss; do
    if getent group "$g" >/dev/null 2>&1; then
      run usermod -a -G "$g" bwv
    fi
  done
  say "state directory /var/lib/bwv (keys, outbox; owned by bwv, private)"
  run install -d -m 0700 -o bwv -g bwv /var/lib/bwv /var/lib/bwv/keys
  venv_with_bwv --system-site-packages "[tpm]"
  say "configuration in $ETC"
  run install -d -m 0750 -o root -g bwv "$ETC"
  if [ -e "$ETC/bwv.toml" ]; then
    say "$ETC/bwv.toml exists: left as it is"
  else
    run install -m 0640 -o root -g bwv "$SRC/systemd/bwv.example.toml" "$ETC/bwv.toml"
  fi
  enable_units bwv.service
  say "done. Next: sudo -u bwv $VENV/bin/bwv provision ... (see README, technician's guide)"
}

if [ "$WITH_DOCK" -eq 1 ]; then
  install_dock
else
  install_camera
fi

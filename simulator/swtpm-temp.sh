#!/usr/bin/env bash
# A throwaway software TPM 2.0 (swtpm) for the tests, the simulator and trying the TPM key by
# hand. Everything lives under DIR: the TPM's state, a local CA that signed its endorsement
# key's certificate (swtpm_setup --create-ek-cert, with swtpm_localca configured by files in
# DIR, never /var/lib/swtpm-localca), the pid and the log.
#
#   scripts/swtpm-temp.sh start [DIR]   manufacture the TPM (the first time) and start it
#                                       (again: does nothing if it is up); "up" is the same
#   scripts/swtpm-temp.sh env   [DIR]   print DIR/swtpm.env: BWV_TPM_TCTI (the TCTI, e.g.
#                                       swtpm:host=127.0.0.1,port=2321), BWV_TPM_CA_ROOT and
#                                       BWV_TPM_CA_ISSUER (the local CA's root and its
#                                       intermediate, PEM)
#   scripts/swtpm-temp.sh stop  [DIR]   stop it; the state stays (start again: same TPM)
#   scripts/swtpm-temp.sh down  [DIR]   stop it and remove DIR
#
# DIR defaults to $BWV_SWTPM_DIR or /tmp/bwv-swtpm; the command port is $BWV_SWTPM_PORT
# (default 2321), the control port the next one. Both listen on 127.0.0.1 only. Needs
# Debian's swtpm and swtpm-tools.
set -euo pipefail

say() { printf 'swtpm-temp: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
  echo "usage: swtpm-temp.sh start|up|stop|down|env [DIR]" >&2
  exit 2
}

cmd="${1:-}"
[ -n "$cmd" ] || usage
DIR="${2:-${BWV_SWTPM_DIR:-/tmp/bwv-swtpm}}"
PORT="${BWV_SWTPM_PORT:-2321}"
CTRL=$((PORT + 1))

need_binaries() {
  local b
  for b in swtpm swtpm_setup swtpm_localca; do
    command -v "$b" >/dev/null || {
      say "missing: $b (apt-get install swtpm swtpm-tools)"
      exit 2
    }
  done
}

running_pid() {
  local pid
  [ -s "$DIR/swtpm.pid" ] || return 1
  pid="$(cat "$DIR/swtpm.pid")"
  kill -0 "$pid" 2>/dev/null || return 1
  # a pid reused by another program is not our TPM
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "swtpm socket" || return 1
  echo "$pid"
}

port_busy() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
PY
}

write_ca_config() {
  mkdir -p "$DIR/ca"
  chmod 700 "$DIR/ca"
  cat >"$DIR/ca/swtpm-localca.conf" <<CONF
statedir = $DIR/ca
signingkey = $DIR/ca/signkey.pem
issuercert = $DIR/ca/issuercert.pem
certserial = $DIR/ca/certserial
CONF
  cat >"$DIR/ca/swtpm-localca.options" <<CONF
--platform-manufacturer bwv
--platform-version 2.1
--platform-model swtpm-temp
CONF
  cat >"$DIR/ca/swtpm_setup.conf" <<CONF
create_certs_tool = $(command -v swtpm_localca)
create_certs_tool_config = $DIR/ca/swtpm-localca.conf
create_certs_tool_options = $DIR/ca/swtpm-localca.options
active_pcr_banks = sha256
CONF
}

manufacture() {
  say "manufacturing a TPM 2.0 in $DIR/state (endorsement key certificates from a local CA in $DIR/ca)"
  write_ca_config
  mkdir -p "$DIR/state"
  swtpm_setup --tpm2 --tpm-state "$DIR/state" --create-ek-cert --create-platform-cert \
    --config "$DIR/ca/swtpm_setup.conf" --logfile "$DIR/setup.log" >/dev/null 2>&1 || {
    tail -n 25 "$DIR/setup.log" >&2
    die "FAILED: swtpm_setup"
  }
}

start() {
  need_binaries
  local pid
  if pid="$(running_pid)"; then
    say "already up in $DIR (pid $pid)"
    cat "$DIR/swtpm.env"
    return 0
  fi
  mkdir -p "$DIR"
  DIR="$(cd "$DIR" && pwd)"
  [ -s "$DIR/state/tpm2-00.permall" ] || manufacture
  local p
  for p in "$PORT" "$CTRL"; do
    port_busy "$p" && die "FAILED: port $p on 127.0.0.1 is taken by another program (BWV_SWTPM_PORT)"
  done
  rm -f "$DIR/swtpm.pid"
  swtpm socket --tpm2 --tpmstate "dir=$DIR/state" \
    --server "type=tcp,port=$PORT,bindaddr=127.0.0.1" \
    --ctrl "type=tcp,port=$CTRL,bindaddr=127.0.0.1" \
    --flags not-need-init,startup-clear \
    --pid "file=$DIR/swtpm.pid" --log "file=$DIR/swtpm.log" --daemon || {
    tail -n 25 "$DIR/swtpm.log" >&2 || true
    die "FAILED: swtpm did not start"
  }
  local i
  for i in $(seq 1 100); do
    if running_pid >/dev/null && port_busy "$PORT"; then
      break
    fi
    [ "$i" -lt 100 ] || die "FAILED: swtpm does not listen on 127.0.0.1:$PORT"
    sleep 0.05
  done
  {
    echo "BWV_TPM_TCTI=swtpm:host=127.0.0.1,port=$PORT"
    echo "BWV_TPM_CA_ROOT=$DIR/ca/swtpm-localca-rootca-cert.pem"
    echo "BWV_TPM_CA_ISSUER=$DIR/ca/issuercert.pem"
  } >"$DIR/swtpm.env.tmp"
  mv "$DIR/swtpm.env.tmp" "$DIR/swtpm.env"
  say "up: swtpm:host=127.0.0.1,port=$PORT (pid $(cat "$DIR/swtpm.pid"); $DIR/swtpm.env)"
  cat "$DIR/swtpm.env"
}

stop() {
  local pid i
  if pid="$(running_pid)"; then
    say "stopping swtpm (pid $pid)"
    kill "$pid"
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$DIR/swtpm.pid"
}

down() {
  [ -e "$DIR" ] || { say "nothing in $DIR"; return 0; }
  [ -e "$DIR/state" ] || [ -e "$DIR/ca" ] || rmdir "$DIR" 2>/dev/null ||
    die "$DIR does not look like a TPM this script made: not removing it"
  stop
  say "removing $DIR"
  rm -rf "$DIR"
}

case "$cmd" in
  start | up) start ;;
  stop) stop ;;
  down) down ;;
  env)
    [ -s "$DIR/swtpm.env" ] || die "no $DIR/swtpm.env: run 'swtpm-temp.sh start' first"
    cat "$DIR/swtpm.env"
    ;;
  *) usage ;;
esac

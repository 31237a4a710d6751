#!/usr/bin/env bash
# A throwaway single-node Ceph with an S3 endpoint (radosgw), for the fleet tests and for
# trying the dock's S3 store by hand. Everything lives under DIR; nothing in /etc/ceph,
# /var/lib/ceph or /var/run/ceph is read or written.
#
#   scripts/ceph-single-node.sh up   [DIR]   start it (again: does nothing if it is up)
#   scripts/ceph-single-node.sh env  [DIR]   print DIR/s3.env (BWV_S3_ENDPOINT, AWS_* keys)
#   scripts/ceph-single-node.sh down [DIR]   stop every daemon it started and remove DIR
#
# DIR defaults to $BWV_CEPH_DIR or /tmp/bwv-ceph. The S3 port is $BWV_RGW_PORT (default 7480),
# the monitor's port $BWV_CEPH_MON_PORT (default: a free one). Needs Debian's ceph-mon,
# ceph-osd, radosgw and ceph-common (pacific, 16.2).
#
# The cluster: one monitor on 127.0.0.1, one OSD whose objects live in memory (memstore; a
# restart loses them, which suits tests), pools of size 1, no manager (nothing here needs
# one), no authentication between the daemons (auth none: it listens on loopback only and
# is thrown away), one radosgw (beast) on 127.0.0.1 and an S3 user made with radosgw-admin.
set -euo pipefail

say() { printf 'ceph-single-node: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
  echo "usage: ceph-single-node.sh up|down|env [DIR]" >&2
  exit 2
}

cmd="${1:-}"
[ -n "$cmd" ] || usage
DIR="${2:-${BWV_CEPH_DIR:-/tmp/bwv-ceph}}"
RGW_PORT="${BWV_RGW_PORT:-7480}"
MEMSTORE_BYTES="${BWV_CEPH_MEMSTORE_BYTES:-$((4 << 30))}"  # a cap: memory is used as written
WAIT_S="${BWV_CEPH_WAIT_S:-60}"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_busy() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a listener, not TIME_WAIT, is "taken"
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
EOF
}

# the daemons this script starts, by name: their pid files are DIR/run/NAME.pid
DAEMONS=(mon.a osd.0 client.rgw.bwv)

pid_of() {
  local f="$DIR/run/$1.pid"
  [ -s "$f" ] || return 1
  local pid
  pid="$(cat "$f")"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$pid"
}

log_tail() {
  local log="$DIR/log/$1.log"
  if [ -s "$log" ]; then
    say "the last lines of $log:"
    tail -n 25 "$log" >&2
  fi
}

# wait_for WHAT LOGNAME COMMAND...: run COMMAND until it succeeds, WAIT_S at most
wait_for() {
  local what="$1" logname="$2"
  shift 2
  local deadline=$((SECONDS + WAIT_S))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "FAILED: $what did not happen within ${WAIT_S}s"
      log_tail "$logname"
      exit 1
    fi
    sleep 0.2  # polling a daemon that is starting: there is nothing to wait on instead
  done
}

ceph_() { timeout 30 ceph --conf "$DIR/ceph.conf" "$@"; }

write_conf() {
  local mon_port="$1" fsid
  fsid="$(cat /proc/sys/kernel/random/uuid)"
  cat >"$DIR/ceph.conf" <<EOF
# written by scripts/ceph-single-node.sh: a throwaway single-node test cluster
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
# daemons (radosgw) default to a "secure" connection to the monitor, which needs cephx
ms mon client mode = crc secure
keyring = $DIR/keyring
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
crash dir = $DIR/crash
log to stderr = false
err to stderr = false
log to file = true
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
# a monitor alone need not batch its map changes: every pool radosgw creates at its first
# start waits for one proposal (1 s each by default)
paxos propose interval = 0.05
paxos min wait = 0.01

[mon]
mon data = $DIR/mon/\$id

[osd]
osd data = $DIR/osd/\$id
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
osd max object name len = 460
osd max object namespace len = 64

[client.rgw.bwv]
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT
rgw data = $DIR/rgw
rgw enable usage log = false
EOF
}

s3_key() {  # $1 characters from $2
  LC_ALL=C tr -dc "$2" </dev/urandom | head -c "$1" || true
}

start_mon() {
  say "creating the monitor (mon.a) in $DIR/mon"
  local fsid addr
  fsid="$(sed -n 's/^fsid = //p' "$DIR/ceph.conf")"
  addr="$(sed -n 's/^mon host = //p' "$DIR/ceph.conf")"
  {
    monmaptool --create --fsid "$fsid" --addv a "[$addr]" "$DIR/monmap" &&
      ceph-mon --conf "$DIR/ceph.conf" --id a --mkfs --monmap "$DIR/monmap"
  } >"$DIR/log/mkfs-mon.log" 2>&1 || {
    cat "$DIR/log/mkfs-mon.log" >&2
    die "FAILED: ceph-mon --mkfs"
  }
  say "starting the monitor on $addr"
  ceph-mon --conf "$DIR/ceph.conf" --id a || { log_tail mon.a; die "FAILED: ceph-mon did not start"; }
  wait_for "the monitor answering" mon.a ceph_ mon stat
}

start_osd() {
  local uuid id
  uuid="$(cat /proc/sys/kernel/random/uuid)"
  say "creating the OSD (osd.0, memstore, at most $((MEMSTORE_BYTES >> 20)) MiB in memory)"
  id="$(ceph_ osd new "$uuid")" || die "FAILED: ceph osd new"
  [ "$id" = 0 ] || die "FAILED: expected osd id 0, the monitor gave $id"
  mkdir -p "$DIR/osd/0"
  ceph-osd --conf "$DIR/ceph.conf" --id 0 --mkfs --osd-uuid "$uuid" >"$DIR/log/mkfs-osd.log" 2>&1 || {
    cat "$DIR/log/mkfs-osd.log" >&2
    die "FAILED: ceph-osd --mkfs"
  }
  say "starting the OSD"
  ceph-osd --conf "$DIR/ceph.conf" --id 0 || { log_tail osd.0; die "FAILED: ceph-osd did not start"; }
  wait_for "the OSD coming up" osd.0 osd_up
}

osd_up() { ceph_ osd dump | grep -q '^osd.0 up'; }

start_rgw() {
  say "starting radosgw (S3) on 127.0.0.1:$RGW_PORT (creates its pools and default zone)"
  mkdir -p "$DIR/rgw"
  radosgw --conf "$DIR/ceph.conf" --name client.rgw.bwv || {
    log_tail client.rgw.bwv
    die "FAILED: radosgw did not start"
  }
  wait_for "radosgw answering on 127.0.0.1:$RGW_PORT" client.rgw.bwv \
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$RGW_PORT/', timeout=2)"
}

make_user() {
  local access secret
  access="$(s3_key 20 'A-Z0-9')"
  secret="$(s3_key 40 'A-Za-z0-9')"
  say "creating the S3 user 'bwv' with radosgw-admin"
  timeout 60 radosgw-admin --conf "$DIR/ceph.conf" user create --uid bwv --display-name "bwv tests" \
    --access-key "$access" --secret-key "$secret" >"$DIR/log/user-create.log" 2>&1 || {
    tail -n 25 "$DIR/log/user-create.log" >&2
    die "FAILED: radosgw-admin user create"
  }
  (
    umask 077
    cat >"$DIR/s3.env.tmp" <<EOF
BWV_S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
AWS_ACCESS_KEY_ID=$access
AWS_SECRET_ACCESS_KEY=$secret
AWS_DEFAULT_REGION=us-east-1
EOF
  )
  mv "$DIR/s3.env.tmp" "$DIR/s3.env"
}

all_up() {
  local d
  for d in "${DAEMONS[@]}"; do pid_of "$d" >/dev/null || return 1; done
  [ -s "$DIR/s3.env" ]
}

# SIGKILL: the cluster is thrown away with DIR, and a memstore OSD stopped politely would first
# write every object it holds to disk
stop_daemons() {
  local i d pid pids=() n
  for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do  # radosgw first, the monitor last
    d="${DAEMONS[$i]}"
    pid="$(pid_of "$d")" || continue
    say "stopping $d (pid $pid)"
    kill -9 "$pid" 2>/dev/null || true
    pids+=("$pid")
  done
  for pid in "${pids[@]}"; do
    for ((n = 0; n < 50; n++)); do  # gone at once, normally; 10 s at most
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
  done
}

need_binaries() {
  local b missing=()
  for b in monmaptool ceph-mon ceph-osd radosgw radosgw-admin ceph python3; do
    command -v "$b" >/dev/null || missing+=("$b")
  done
  [ ${#missing[@]} -eq 0 ] || {
    say "missing: ${missing[*]} (apt-get install ceph-mon ceph-osd radosgw ceph-common)"
    exit 2
  }
}

# a start that failed: stop what did start, keep the logs
failed_up() {
  local rc=$?
  [ "$rc" -ne 0 ] || return 0
  stop_daemons
  say "the logs stay in $DIR/log ('ceph-single-node.sh down $DIR' removes them)"
  exit "$rc"
}

up() {
  need_binaries
  if all_up; then
    say "already up in $DIR ($(grep BWV_S3_ENDPOINT "$DIR/s3.env" | cut -d= -f2))"
    return 0
  fi
  if [ -e "$DIR/ceph.conf" ]; then
    say "a partial cluster is in $DIR: stopping it and starting afresh"
    stop_daemons
    rm -rf "$DIR"
  fi
  if port_busy "$RGW_PORT"; then
    die "FAILED: port $RGW_PORT (BWV_RGW_PORT) on 127.0.0.1 is taken by another program"
  fi
  local start=$SECONDS mon_port="${BWV_CEPH_MON_PORT:-}"
  [ -n "$mon_port" ] || mon_port="$(free_port)"
  mkdir -p "$DIR"/{run,log,mon/a,crash}
  chmod 700 "$DIR"
  trap failed_up EXIT
  write_conf "$mon_port"
  start_mon
  start_osd
  start_rgw
  make_user
  trap - EXIT
  say "up in $((SECONDS - start))s: S3 at http://127.0.0.1:$RGW_PORT, keys in $DIR/s3.env"
}

down() {
  if [ ! -e "$DIR" ]; then
    say "nothing in $DIR"
    return 0
  fi
  if rmdir "$DIR" 2>/dev/null; then
    say "removed the empty $DIR"
    return 0
  fi
  [ -e "$DIR/ceph.conf" ] || [ -e "$DIR/run" ] ||
    die "$DIR does not look like a cluster this script made: not removing it"
  stop_daemons
  say "removing $DIR"
  rm -rf "$DIR"
}

case "$cmd" in
  up) up ;;
  down) down ;;
  env)
    [ -s "$DIR/s3.env" ] || die "no $DIR/s3.env: run 'ceph-single-node.sh up' first"
    cat "$DIR/s3.env"
    ;;
  *) usage ;;
esac

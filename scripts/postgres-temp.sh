#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the fleet tests and for trying the dock's PostgreSQL
# index by hand. Everything lives under DIR.
#
#   scripts/postgres-temp.sh up   [DIR]   initdb and start it (again: does nothing if it is up)
#   scripts/postgres-temp.sh env  [DIR]   print DIR/pg.env (BWV_PG_URL)
#   scripts/postgres-temp.sh down [DIR]   stop it and remove DIR
#
# DIR defaults to $BWV_PG_DIR or /tmp/bwv-pg; the port is $BWV_PG_PORT (default 5439). It
# listens on 127.0.0.1 and on a unix socket in DIR. Authentication is "trust" on loopback and
# the socket: a test cluster that is thrown away, not a place for anything that matters. The
# URL names the role `postgres` (run as root, the server runs as the user postgres; run as
# another user, as that user, and the URL names that user). Needs Debian's postgresql-15
# (/usr/lib/postgresql/15/bin; $BWV_PG_BIN to point elsewhere).
set -euo pipefail

say() { printf 'postgres-temp: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

usage() {
  echo "usage: postgres-temp.sh up|down|env [DIR]" >&2
  exit 2
}

cmd="${1:-}"
[ -n "$cmd" ] || usage
DIR="${2:-${BWV_PG_DIR:-/tmp/bwv-pg}}"
PORT="${BWV_PG_PORT:-5439}"
BIN="${BWV_PG_BIN:-/usr/lib/postgresql/15/bin}"

if [ "$(id -u)" -eq 0 ]; then
  OWNER=postgres
  as_owner() { runuser -u postgres -- "$@"; }
else
  OWNER="$(id -un)"
  as_owner() { "$@"; }
fi

need_binaries() {
  local b
  for b in initdb pg_ctl pg_isready; do
    [ -x "$BIN/$b" ] || {
      say "missing: $BIN/$b (apt-get install postgresql-15)"
      exit 2
    }
  done
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    say "missing: the user postgres (apt-get install postgresql-15 makes it)"
    exit 2
  fi
}

is_up() {
  [ -s "$DIR/pg.env" ] && [ -s "$DIR/data/postmaster.pid" ] &&
    as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1
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

stop_server() {
  if [ -s "$DIR/data/postmaster.pid" ]; then
    say "stopping the server"
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
}

up() {
  need_binaries
  if is_up; then
    say "already up in $DIR ($(cut -d= -f2 "$DIR/pg.env"))"
    return 0
  fi
  if [ -e "$DIR/data" ]; then
    say "a cluster that is not running is in $DIR: removing it and starting afresh"
    stop_server
    rm -rf "$DIR"
  fi
  if port_busy "$PORT"; then
    die "FAILED: port $PORT (BWV_PG_PORT) on 127.0.0.1 is taken by another program"
  fi
  local start=$SECONDS
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  [ "$OWNER" = "$(id -un)" ] || chown "$OWNER:" "$DIR"
  as_owner test -w "$DIR" ||
    die "FAILED: the user $OWNER cannot write $DIR (a parent directory closed to it?)"
  say "creating a cluster in $DIR/data (initdb, trust authentication on loopback)"
  as_owner "$BIN/initdb" -D "$DIR/data" -U "$OWNER" --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync \
    >"$DIR/initdb.log" 2>&1 || {
    tail -n 25 "$DIR/initdb.log" >&2
    die "FAILED: initdb"
  }
  say "starting the server on 127.0.0.1:$PORT and a socket in $DIR"
  as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c max_connections=200" \
    start >/dev/null 2>&1 || {
    say "the last lines of $DIR/server.log:"
    tail -n 25 "$DIR/server.log" >&2
    die "FAILED: the server did not start"
  }
  as_owner "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" || {
    tail -n 25 "$DIR/server.log" >&2
    stop_server
    die "FAILED: the server does not answer on 127.0.0.1:$PORT"
  }
  echo "BWV_PG_URL=postgresql://$OWNER@127.0.0.1:$PORT/postgres" >"$DIR/pg.env.tmp"
  chmod 600 "$DIR/pg.env.tmp"
  mv "$DIR/pg.env.tmp" "$DIR/pg.env"
  say "up in $((SECONDS - start))s: postgresql://$OWNER@127.0.0.1:$PORT/postgres (in $DIR/pg.env)"
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
  [ -e "$DIR/data" ] || [ -e "$DIR/pg.env" ] ||
    die "$DIR does not look like a cluster this script made: not removing it"
  stop_server
  say "removing $DIR"
  rm -rf "$DIR"
}

case "$cmd" in
  up) up ;;
  down) down ;;
  env)
    [ -s "$DIR/pg.env" ] || die "no $DIR/pg.env: run 'postgres-temp.sh up' first"
    cat "$DIR/pg.env"
    ;;
  *) usage ;;
esac

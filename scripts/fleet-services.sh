#!/usr/bin/env bash
# The servers a many-docks store runs on, on this machine, for the simulator and the bench:
# a single-node Ceph cluster with the RADOS Gateway (S3 with Object Lock) and a throwaway
# PostgreSQL cluster, both under DIR (default /tmp/bwv-fleet).
#
#   scripts/fleet-services.sh up [DIR]     start both (idempotent); writes DIR/fleet.env
#   source DIR/fleet.env                   BWV_S3_ENDPOINT, AWS_* keys, BWV_PG_URL
#   bwv sim raid --dock-store s3 --out sim-out-s3
#   scripts/fleet-services.sh down [DIR]   stop both and remove DIR
#
# Needs Debian's ceph-mon, ceph-osd, ceph-mgr, radosgw, ceph-common and postgresql packages
# (.ci/run installs them). A real deployment runs its own Ceph (or uses AWS S3) and its own
# PostgreSQL: README, "Many docks".
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:-}"
dir="${2:-${BWV_FLEET_DIR:-/tmp/bwv-fleet}}"

case "$cmd" in
  up)
    mkdir -p "$dir"
    echo "fleet-services: Ceph (RADOS Gateway, memstore) under $dir/ceph"
    "$here/ceph-single-node.sh" up "$dir/ceph"
    echo "fleet-services: PostgreSQL under $dir/pg"
    "$here/postgres-temp.sh" up "$dir/pg"
    umask 077
    cat "$dir/ceph/s3.env" "$dir/pg/pg.env" > "$dir/fleet.env.tmp"
    mv "$dir/fleet.env.tmp" "$dir/fleet.env"
    echo "fleet-services: up; now: source $dir/fleet.env"
    ;;
  down)
    "$here/ceph-single-node.sh" down "$dir/ceph" || true
    "$here/postgres-temp.sh" down "$dir/pg" || true
    rm -rf "$dir"
    echo "fleet-services: down"
    ;;
  env)
    cat "$dir/fleet.env"
    ;;
  *)
    echo "usage: $0 up|down|env [DIR]" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL cluster for the tests.
#   eval "$(scripts/pg-test-cluster.sh start)"  sets NOVACRON_TEST_PG_URL and NOVACRON_TEST_PG_DIR
#   scripts/pg-test-cluster.sh stop "$NOVACRON_TEST_PG_DIR"
# initdb refuses to run as root, so as root the cluster runs as user postgres.
set -euo pipefail
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
[ -n "$bindir" ] || bindir=$(dirname "$(command -v initdb)")
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case "${1:-}" in
start)
	dir=$(mktemp -d /tmp/novacron-pg.XXXXXX)
	chmod 755 "$dir"
	[ "$(id -u)" = 0 ] && chown postgres "$dir"
	if ! as_pg "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		exit 1
	fi
	# A unix socket only: no TCP port to collide with anything.
	as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
		-o "-c listen_addresses='' -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" start >/dev/null
	echo "export NOVACRON_TEST_PG_URL='postgres://postgres@/postgres?host=$dir&sslmode=disable'"
	echo "export NOVACRON_TEST_PG_DIR='$dir'"
	;;
stop)
	dir=${2:?directory}
	as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$dir"
	;;
*) echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Runs the benchmarks on SQLite and on a throwaway PostgreSQL, each beside a
# baseline in the same run: the API (httpbench, against a bare net/http
# handler) and the lifecycle of process VMs (vmbench, against bare
# processes; root only, as guests need their own cgroups and uids).
# HTTPBENCH_FLAGS and VMBENCH_FLAGS pass flags (VMBENCH_FLAGS='-n 100').
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NOVACRON_TEST_PG_URL:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	eval "$(scripts/pg-test-cluster.sh start)"
	trap 'scripts/pg-test-cluster.sh stop "$NOVACRON_TEST_PG_DIR"' EXIT
fi
go run ./bench/httpbench -pg "${NOVACRON_TEST_PG_URL:-}" ${HTTPBENCH_FLAGS:-}
echo
if [ "$(id -u)" = 0 ]; then
	go run ./bench/vmbench -pg "${NOVACRON_TEST_PG_URL:-}" ${VMBENCH_FLAGS:-}
else
	echo "vmbench skipped: it needs root (process guests run in their own cgroups, as their own uids); run make bench as root"
fi

#!/usr/bin/env bash
# Runs the API benchmark on SQLite and on a throwaway PostgreSQL, beside a
# bare net/http handler in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NOVACRON_TEST_PG_URL:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	eval "$(scripts/pg-test-cluster.sh start)"
	trap 'scripts/pg-test-cluster.sh stop "$NOVACRON_TEST_PG_DIR"' EXIT
fi
go run ./bench/httpbench -pg "${NOVACRON_TEST_PG_URL:-}" "$@"

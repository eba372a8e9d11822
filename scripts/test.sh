#!/usr/bin/env bash
# Runs the whole test suite: formatting, vet, staticcheck, and every test
# with the race detector, on SQLite and on a throwaway PostgreSQL that this
# script starts (and installs first when run as root on Debian).
# NOVACRON_TEST_REQUIRE=all turns every skipped prerequisite into a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	scripts/install-test-deps.sh
fi

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$bad" ]; then echo "gofmt would change: $bad"; exit 1; fi
echo "== go vet"
go vet ./...
if command -v staticcheck >/dev/null; then
	echo "== staticcheck"
	staticcheck ./...
elif [ -n "${NOVACRON_TEST_REQUIRE:-}" ]; then
	echo "staticcheck is required but missing"; exit 1
fi

if [ -z "${NOVACRON_TEST_PG_URL:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	eval "$(scripts/pg-test-cluster.sh start)"
	trap 'scripts/pg-test-cluster.sh stop "$NOVACRON_TEST_PG_DIR"' EXIT
fi

# The qemu driver's tests boot a real kernel with a busybox initramfs, built
# once into a cache outside the repository.
if [ -z "${NOVACRON_TEST_GUEST_DIR:-}" ] && command -v qemu-system-x86_64 >/dev/null && command -v apt-get >/dev/null; then
	guest_cache=${NOVACRON_TEST_GUEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/novacron-test-guest}
	[ "$(id -u)" = 0 ] && guest_cache=${NOVACRON_TEST_GUEST_CACHE:-/var/cache/novacron-test-guest}
	if NOVACRON_TEST_GUEST_DIR=$(scripts/qemu-test-guest.sh "$guest_cache"); then
		export NOVACRON_TEST_GUEST_DIR
	else
		echo "scripts/qemu-test-guest.sh failed: the qemu driver's tests will skip (or fail under NOVACRON_TEST_REQUIRE)"
	fi
fi

echo "== go test -race"
go test -race -count=1 -timeout 40m "$@" ./...

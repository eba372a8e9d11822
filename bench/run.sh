#!/usr/bin/env bash
# Runs the benchmarks on SQLite and on a throwaway PostgreSQL, each beside a
# baseline in the same run: the API (httpbench, against a bare net/http
# handler), the lifecycle of process VMs (vmbench, against bare
# processes; root only, as guests need their own cgroups and uids) and QEMU
# guests' boot latency and memory (qemubench, SQLite only, against a bare
# QEMU; root only, with qemu-system-x86_64 and the test guest of
# scripts/qemu-test-guest.sh, built into NOVACRON_TEST_GUEST_DIR or
# /var/cache/novacron-test-guest when missing) and containers' create,
# stop and delete latency and memory (containerbench, SQLite only, against
# a bare "runc run -d" of the same bundle; root only, with runc and
# /bin/busybox from busybox-static), WS /ws/monitoring holding 1000
# connections (wsbench, SQLite, against a bare coder/websocket fan-out),
# metrics of 100 VMs over 30 days (metricsbench: bytes per sample, ingest
# rate, query latency) and the transfer engine against rsync, zstd, tar and
# cat over a shaped link (bench/transfer/run.sh, root only).
# HTTPBENCH_FLAGS, VMBENCH_FLAGS, QEMUBENCH_FLAGS, CONTAINERBENCH_FLAGS,
# WSBENCH_FLAGS and METRICSBENCH_FLAGS pass flags (VMBENCH_FLAGS='-n 100',
# QEMUBENCH_FLAGS='-counts 1,10', CONTAINERBENCH_FLAGS='-counts 1,10').
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NOVACRON_TEST_PG_URL:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	eval "$(scripts/pg-test-cluster.sh start)"
	trap 'scripts/pg-test-cluster.sh stop "$NOVACRON_TEST_PG_DIR"' EXIT
fi
go run ./bench/httpbench -pg "${NOVACRON_TEST_PG_URL:-}" ${HTTPBENCH_FLAGS:-}
echo
go run ./bench/wsbench ${WSBENCH_FLAGS:-}
echo
go run ./bench/metricsbench -pg "${NOVACRON_TEST_PG_URL:-}" ${METRICSBENCH_FLAGS:-}
echo
if [ "$(id -u)" = 0 ]; then
	go run ./bench/vmbench -pg "${NOVACRON_TEST_PG_URL:-}" ${VMBENCH_FLAGS:-}
	echo
	guest=${NOVACRON_TEST_GUEST_DIR:-/var/cache/novacron-test-guest}
	if ! command -v qemu-system-x86_64 >/dev/null; then
		echo "qemubench skipped: qemu-system-x86_64 is not installed"
	elif built=$(scripts/qemu-test-guest.sh "$guest"); then
		go run ./bench/qemubench -guest-dir "$built" ${QEMUBENCH_FLAGS:-}
	else
		echo "qemubench skipped: the test guest could not be built in $guest (scripts/qemu-test-guest.sh)"
	fi
	echo
	if ! command -v runc >/dev/null; then
		echo "containerbench skipped: runc is not installed"
	elif [ ! -x /bin/busybox ]; then
		echo "containerbench skipped: /bin/busybox is missing (apt-get install busybox-static)"
	else
		go run ./bench/containerbench ${CONTAINERBENCH_FLAGS:-}
	fi
	echo
	bench/transfer/run.sh
else
	echo "vmbench, qemubench, containerbench and the transfer benchmark skipped: they need root (guests run as their own uids, in their own cgroups); run make bench as root"
fi

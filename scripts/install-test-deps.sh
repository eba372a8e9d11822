#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine (run as root):
# PostgreSQL for the store and end-to-end tests, qemu-img (qemu-utils) for the
# image checks, QEMU and runc for the drivers, staticcheck for the lint step,
# promtool for the metrics check.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
# QEMU for the qemu driver; busybox-static, cpio and xz build its test guest
# (scripts/qemu-test-guest.sh).
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v qemu-img >/dev/null || need+=(qemu-utils)
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v xz >/dev/null || need+=(xz-utils)
command -v prlimit >/dev/null || need+=(util-linux)
# runc for the container driver.
command -v runc >/dev/null || need+=(runc)
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# Debian's package starts a cluster of its own; the tests start throwaway ones.
if [ -x /usr/sbin/pg_ctlcluster ] && command -v pg_lsclusters >/dev/null; then
	pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
		pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
	done
fi
# promtool checks the /metrics output (`promtool check metrics`). Debian's
# prometheus package carries it, but installing that package also installs
# and may start a Prometheus server: only promtool is taken from it.
if ! command -v promtool >/dev/null; then
	tmp=$(mktemp -d)
	(
		cd "$tmp"
		[ -n "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v lock)" ] || apt-get update -q
		apt-get download prometheus
		dpkg-deb -x prometheus_*.deb x
		install -m 0755 x/usr/bin/promtool /usr/local/bin/promtool
	)
	rm -rf "$tmp"
fi
if ! command -v staticcheck >/dev/null && [ ! -x "$(go env GOPATH)/bin/staticcheck" ]; then
	go install honnef.co/go/tools/cmd/staticcheck@latest
fi

#!/usr/bin/env bash
# Benchmark of the transfer engine against the tools an operator would use
# (issue 9). Builds its own data, runs every transfer inside a network
# namespace whose loopback is shaped with tc, and prints one table: wall
# time, bytes on the wire (tc's counter on the shaped link, both directions),
# CPU seconds (both sides, and the sender's alone), the sender's rate per
# core (the file's data, holes excluded, per second of its CPU) and speedup
# (size / bytes on the wire).
#
#   sudo bench/transfer/run.sh              # full run: 4 GiB image, 1 Gbit/s
#   IMAGE_GIB=1 RATES="1gbit" bench/transfer/run.sh
#   ONLY='novacron|tar' bench/transfer/run.sh   # only the tools matching a regex
#
# Needs root (namespaces, tc, loop mounts or debugfs).
set -uo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/novacron-transfer-bench}
IMAGE_GIB=${IMAGE_GIB:-4}
RANDOM_MIB=${RANDOM_MIB:-1024}
RATES=${RATES:-"1gbit 100mbit"}
NS=nvxbench$$
PORT=47000

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need rsync rsync; need nc netcat-openbsd; need zstd zstd; need debugfs e2fsprogs; need /usr/bin/time time
mkdir -p "$WORK"
go build -o "$WORK/novacron" ./cmd/novacron
NC="$WORK/novacron"

# (a) a sparse raw image with an ext4 file system holding a Debian root file
# system (debootstrap minbase; a part of the host's /usr where that fails).
if [ ! -f "$WORK/a.img" ]; then
	rootfs="$WORK/rootfs"
	if [ ! -d "$rootfs" ]; then
		need debootstrap debootstrap
		if ! debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1; then
			echo "debootstrap failed (see $WORK/debootstrap.log): using a copy of /usr" >&2
			rm -rf "$rootfs"
			mkdir -p "$rootfs/usr/share" && cp -a /usr/bin /usr/sbin "$rootfs/usr/" && cp -a /usr/share/doc /usr/share/man "$rootfs/usr/share/"
		fi
	fi
	truncate -s "${IMAGE_GIB}G" "$WORK/a.img"
	mkfs.ext4 -q -F -d "$rootfs" "$WORK/a.img"
fi
# (b) a copy changed realistically, in place: packages installed (python3
# and curl, with apt in a chroot) and logs written.
if [ ! -f "$WORK/b.img" ]; then
	cp --sparse=always "$WORK/a.img" "$WORK/b.img"
	mnt="$WORK/mnt"; mkdir -p "$mnt"
	if mount -o loop "$WORK/b.img" "$mnt" 2>/dev/null; then
		installed=no
		if [ -x "$mnt/usr/bin/apt-get" ]; then
			mount -t proc proc "$mnt/proc" && mount --bind /dev "$mnt/dev"
			cp /etc/resolv.conf "$mnt/etc/resolv.conf" 2>/dev/null
			chroot "$mnt" apt-get install -y -qq python3 curl >"$WORK/apt.log" 2>&1 && installed=yes
			chroot "$mnt" apt-get clean >/dev/null 2>&1
			umount "$mnt/dev" "$mnt/proc"
		fi
		if [ $installed = no ]; then
			echo "no packages installed in the image (see $WORK/apt.log): copying files instead" >&2
			mkdir -p "$mnt/opt/extra" && cp -a /usr/lib/python3* "$mnt/opt/extra/" 2>/dev/null
		fi
		mkdir -p "$mnt/var/log/bench"
		for i in $(seq 1 50); do head -c 200000 /dev/urandom | base64 >"$mnt/var/log/bench/log$i.log"; done
		umount "$mnt"
	else
		# No loop devices (a container): write new files with debugfs.
		extra="$WORK/extra"; rm -rf "$extra"; mkdir -p "$extra"
		cp -a /usr/lib/x86_64-linux-gnu/perl* "$extra/" 2>/dev/null || cp -a /usr/share/doc "$extra/"
		for i in $(seq 1 50); do head -c 200000 /dev/urandom | base64 >"$extra/log$i.log"; done
		cmds="$WORK/debugfs.cmds"; echo "mkdir /opt/extra" >"$cmds"
		(cd "$extra" && find . -type d ! -name . -printf 'mkdir /opt/extra/%P\n'; find . -type f -printf 'write %P /opt/extra/%P\n' | sed "s|^write |write $extra/|") >>"$cmds"
		debugfs -w -f "$cmds" "$WORK/b.img" >/dev/null 2>&1
	fi
fi
# (c) incompressible data.
[ -f "$WORK/c.bin" ] || head -c "${RANDOM_MIB}M" /dev/urandom >"$WORK/c.bin"

ip netns add "$NS"
trap 'ip netns del "$NS" 2>/dev/null || true' EXIT
ip -n "$NS" link set lo up
inns() { ip netns exec "$NS" "$@"; }
shape() { inns tc qdisc replace dev lo root tbf rate "$1" burst 1mb latency 50ms; }
wirebytes() { inns tc -s qdisc show dev lo | awk '/Sent/ {print $2; exit}'; }

# run NAME FILE RECEIVER SENDER: both commands run in the namespace; the
# receiver is started first. Prints one table row.
run() {
	local name=$1 file=$2 recv=$3 send=$4 out="$WORK/out"
	[[ -n "${ONLY:-}" && ! "$name" =~ $ONLY ]] && return
	rm -rf "$out" "$out".nvpart "$WORK/dst"; mkdir -p "$WORK/dst"
	[ -n "${PREPARE:-}" ] && eval "$PREPARE"
	local w0; w0=$(wirebytes)
	local t0; t0=$(date +%s.%N)
	inns /usr/bin/time -f "%U %S" -o "$WORK/rtime" bash -c "$recv" &
	local rp=$!
	sleep 0.3
	inns /usr/bin/time -f "%U %S" -o "$WORK/stime" bash -c "$send"
	wait $rp
	local t1; t1=$(date +%s.%N)
	local w1; w1=$(wirebytes)
	local size; size=$(stat -c %s "$file")
	local cpu; cpu=$(cat "$WORK/rtime" "$WORK/stime" | awk '{c += $1 + $2} END {printf "%.2f", c}')
	local scpu; scpu=$(awk '{printf "%.2f", $1 + $2}' "$WORK/stime")
	# The sender's rate per core: the file's data (holes excluded) per
	# second of the sender's CPU.
	local data; data=$(du -B1 "$file" | cut -f1)
	printf "| %-6s | %-9s | %-24s | %8.2f | %12d | %7s | %7s | %6.0f | %7.2f |\n" "$(basename "$file")" "$RATE" "$name" \
		"$(echo "$t1 - $t0 - 0.3" | bc)" $((w1 - w0)) "$cpu" "$scpu" "$(echo "$data / 1000000 / ($scpu + 0.005)" | bc -l)" "$(echo "$size / ($w1 - $w0)" | bc -l)"
}

TOKEN=benchtoken
engine() { PORT=$((PORT + 1)); run "novacron transfer ${2:-}" "$1" "$NC transfer receive --listen 127.0.0.1:$PORT --out $WORK/out --token $TOKEN >/dev/null 2>&1" "$NC transfer send --to 127.0.0.1:$PORT --token $TOKEN ${2:-} $1 >/dev/null"; }
catnc() { PORT=$((PORT + 1)); run "cat | nc" "$1" "nc -l -N 127.0.0.1 $PORT >$WORK/out" "cat $1 | nc -N 127.0.0.1 $PORT"; }
zstdnc() { PORT=$((PORT + 1)); run "zstd -1 -T0 | nc" "$1" "nc -l -N 127.0.0.1 $PORT | zstd -d -q -o $WORK/out -f" "zstd -1 -T0 -c $1 | nc -N 127.0.0.1 $PORT"; }
tarnc() { PORT=$((PORT + 1)); run "tar -cS | nc" "$1" "nc -l -N 127.0.0.1 $PORT | tar -xS -C $WORK/dst" "tar -cS -C $(dirname "$1") $(basename "$1") | nc -N 127.0.0.1 $PORT"; }
rsyncd_conf="$WORK/rsyncd.conf"
printf 'use chroot = no\n[dst]\npath = %s\nread only = no\nuid = root\ngid = root\n' "$WORK/dst" >"$rsyncd_conf"
rsyncrun() { # NAME FILE FLAGS...
	local name=$1 file=$2; shift 2
	PORT=$((PORT + 1))
	run "$name" "$file" "rsync --daemon --no-detach --port $PORT --address 127.0.0.1 --config $rsyncd_conf & p=\$!; sleep 0.2; while [ ! -f $WORK/rsync.done ]; do sleep 0.05; done; kill \$p; rm -f $WORK/rsync.done" \
		"rsync $* --no-W $file rsync://127.0.0.1:$PORT/dst/ >/dev/null; touch $WORK/rsync.done"
}

# The 1 GiB version of (a) for the slow link: the same root file system.
if [ ! -f "$WORK/a1.img" ]; then
	truncate -s 1G "$WORK/a1.img"
	mkfs.ext4 -q -F -d "$WORK/rootfs" "$WORK/a1.img"
fi

# (Counted once: "rsync --help | grep -q" can fail by SIGPIPE under pipefail.)
HAVE_ZC=$(rsync --help 2>&1 | grep -c -- --zc || true)
echo "| data   | rate      | tool                     | wall s   | bytes on wire | CPU s   | send CPU s | send MB/s per core | speedup |"
echo "|--------|-----------|--------------------------|----------|---------------|---------|------------|--------------------|---------|"
for RATE in $RATES; do
	shape "$RATE"
	if [ "$RATE" = 1gbit ]; then files="$WORK/a.img $WORK/c.bin"; else files="$WORK/a1.img"; fi
	for f in $files; do
		engine "$f"
		engine "$f" "--level 1"
		rsyncrun "rsync -z" "$f" -z
		rsyncrun "rsync -S -z" "$f" -S -z
		[ "$HAVE_ZC" -gt 0 ] && rsyncrun "rsync -S --zc=zstd" "$f" -S -z --zc=zstd
		zstdnc "$f"
		[ "$RATE" = 1gbit ] && tarnc "$f" && catnc "$f"
	done
	# (b): the receiver holds a.img; only the delta should travel.
	PREPARE="cp --sparse=always $WORK/a.img $WORK/out; cp --sparse=always $WORK/a.img $WORK/dst/b.img"
	engine "$WORK/b.img"
	engine "$WORK/b.img" "--level 1"
	engine "$WORK/b.img" "--level 4"
	rsyncrun "rsync -z --inplace" "$WORK/b.img" -z --inplace
	PREPARE=""
	zstdnc "$WORK/b.img"
done

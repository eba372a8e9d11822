#!/usr/bin/env bash
# Builds the QEMU test guest into CACHE_DIR (idempotently): vmlinuz, Debian's
# kernel, and initramfs.gz, a busybox initramfs whose /init powers the guest
# off on an ACPI power button press, prints NOVACRON-BOOT-OK on the console
# and then "tick N" every 100 ms. The kernel command line changes it:
#   novacron.acpi=off        no acpid: the guest ignores the power button
#   novacron.lines=a,b,c     print these lines (and nothing else) instead of
#                            the marker and ticks (with "quiet loglevel=0")
#   novacron.shell=1         after the marker, a shell on the console
#                            instead of the ticks
#   novacron.panic=1         after the marker, the kernel panics (reported
#                            to QEMU by the pvpanic device)
# Needs: apt-get, dpkg-deb, busybox-static, cpio, gzip, xz (for .ko.xz).
# Prints CACHE_DIR on success.
set -euo pipefail
cache=${1:?usage: $0 CACHE_DIR}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
# Bump when /init or the layout changes, so old caches are rebuilt.
version=4
if [ -s "$cache/vmlinuz" ] && [ -s "$cache/initramfs.gz" ] && [ "$(cat "$cache/version" 2>/dev/null)" = "$version" ]; then
	echo "$cache"
	exit 0
fi
for tool in apt-get apt-cache dpkg-deb cpio gzip; do
	command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "$0: /bin/busybox is missing (apt-get install busybox-static)" >&2; exit 1; }
ldd /bin/busybox >/dev/null 2>&1 && { echo "$0: /bin/busybox is not static (apt-get install busybox-static)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
	apt-get update -q >/dev/null
	pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
fi
[ -n "$pkg" ] || { echo "$0: no kernel package found for linux-image-amd64" >&2; exit 1; }
(cd "$work" && apt-get download -q "$pkg" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download -q "$pkg" >/dev/null; })
dpkg-deb -x "$work"/"$pkg"_*.deb "$work/kernel"
kver=${pkg#linux-image-}

root=$work/root
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc/acpi/PWRF,lib/modules}
cp /bin/busybox "$root/bin/busybox"
for mod in evdev button pvpanic pvpanic-mmio; do
	f=$(find "$work/kernel/lib/modules/$kver" -name "$mod.ko" -o -name "$mod.ko.xz" | head -1)
	[ -n "$f" ] || { echo "$0: $mod.ko not found in $pkg" >&2; exit 1; }
	case $f in
	*.xz) xz -dc "$f" >"$root/lib/modules/$mod.ko" ;;
	*) cp "$f" "$root/lib/modules/$mod.ko" ;;
	esac
done
printf '#!/bin/busybox sh\npoweroff -f\n' >"$root/etc/acpi/PWRF/00000080"
chmod 755 "$root/etc/acpi/PWRF/00000080"
cat >"$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
cmdline=$(cat /proc/cmdline)
insmod /lib/modules/evdev.ko
insmod /lib/modules/button.ko
insmod /lib/modules/pvpanic.ko 2>/dev/null && insmod /lib/modules/pvpanic-mmio.ko 2>/dev/null
case " $cmdline " in
*" novacron.acpi=off "*) ;;
*) acpid -d -c /etc/acpi >/dev/null 2>&1 & ;;
esac
lines=
for arg in $cmdline; do
	case $arg in novacron.lines=*) lines=${arg#novacron.lines=} ;; esac
done
if [ -n "$lines" ]; then
	echo "$lines" | tr ',' '\n'
	while :; do sleep 3600; done
fi
echo NOVACRON-BOOT-OK
case " $cmdline " in
*" novacron.panic=1 "*) echo c >/proc/sysrq-trigger ;;
*" novacron.shell=1 "*) exec setsid cttyhack sh -i ;;
esac
i=0
while :; do echo "tick $i"; i=$((i+1)); usleep 100000; done
INIT
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) >"$work/initramfs.gz"
cp "$work"/kernel/boot/vmlinuz-* "$work/vmlinuz"
mv "$work/vmlinuz" "$cache/vmlinuz"
mv "$work/initramfs.gz" "$cache/initramfs.gz"
echo "$version" >"$cache/version"
echo "$cache"

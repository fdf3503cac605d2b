#!/usr/bin/env bash
# Builds the QEMU guest of the `qemu` VM driver from Debian's packages: the kernel of
# linux-image-cloud-amd64 and an initramfs of busybox-static, the virtio modules and
# infra/guest/init.sh. Both packages are downloaded (apt-get download) and unpacked
# into a cache directory, never installed. It also installs qemu-system-x86 when
# missing and run as root (else it says what to install). Prints the directory that
# holds vmlinuz and initrd.img; safe to run again: it rebuilds only when the kernel
# package or init.sh changed.
#
#   STRATA_GUEST_DIR   where guests are kept (default ~/.cache/strata/guest)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "build-guest: installing qemu-system-x86 from Debian's packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
  else
    echo "build-guest: qemu-system-x86_64 is missing; install it (Debian: sudo apt-get install qemu-system-x86)" >&2
    exit 1
  fi
fi

kernel_package() {
  apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'
}
kernel_pkg=$(kernel_package)
# A fresh machine may have no package lists yet.
if [ -z "$kernel_pkg" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get update -qq
  kernel_pkg=$(kernel_package)
fi
if [ -z "$kernel_pkg" ]; then
  echo "build-guest: apt-cache knows no linux-image-cloud-amd64 (run apt-get update?)" >&2
  exit 1
fi
init_sum=$(sha256sum infra/guest/init.sh | cut -c1-12)
out="${STRATA_GUEST_DIR:-$HOME/.cache/strata/guest}/$kernel_pkg-$init_sum"
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ]; then
  echo "$out"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
echo "build-guest: downloading $kernel_pkg and busybox-static" >&2
apt-get download "$kernel_pkg" busybox-static >/dev/null 2>&1 || { echo "build-guest: apt-get download $kernel_pkg busybox-static failed" >&2; exit 1; }
dpkg-deb -x "$kernel_pkg"_*.deb kernel
dpkg-deb -x busybox-static_*.deb busybox

mkdir -p root/bin root/lib/modules
cp busybox/bin/busybox root/bin/busybox
cp "$repo/infra/guest/init.sh" root/init
chmod 755 root/init root/bin/busybox
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
  ko=$(find kernel/lib/modules -name "$m.ko*" | head -n 1)
  [ -n "$ko" ] || { echo "build-guest: $kernel_pkg has no module $m" >&2; exit 1; }
  case "$ko" in
    *.xz) xz -dc "$ko" > "root/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$ko" > "root/lib/modules/$m.ko" ;;
    *) cp "$ko" "root/lib/modules/$m.ko" ;;
  esac
done

mkdir -p "$out.tmp"
cp kernel/boot/vmlinuz-* "$out.tmp/vmlinuz"
(cd root && find . | "$work/busybox/bin/busybox" cpio -o -H newc 2>/dev/null) | gzip -9 > "$out.tmp/initrd.img"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "build-guest: guest in $out" >&2
echo "$out"

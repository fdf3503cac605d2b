#!/bin/busybox sh
# The init of the QEMU guest of the `qemu` VM driver (built into its initramfs by
# infra/scripts/build-guest.sh). It prints "boot <vm>" as soon as it runs, before
# anything touches the disk; then it loads the virtio modules and counts on its disk
# /dev/vda, whose block 0 (4 KiB) holds "STRATAQ <vm> <counter>". It reads the counter
# there (0 on a fresh disk), checks the block is its own, and prints
# "ready <vm> counter <n>"; then, for each next counter, it writes the block with
# O_DIRECT and fsync (dd oflag=direct conv=fsync) and only once that returns prints
# "counter <n>" on the console (ttyS0). A wrong block or an I/O error is printed and
# powers the guest off. The VM's name comes from the kernel command line
# (strata.vm=<name>), the pause between counters from strata.interval_ms=<ms>.
/bin/busybox mkdir -p /proc /sys /dev /tmp /bin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox --install -s /bin
export PATH=/bin

arg() { sed -n "s/.*$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
VM=$(arg strata.vm)
INTERVAL_MS=$(arg strata.interval_ms)
[ -n "$INTERVAL_MS" ] || INTERVAL_MS=100
# Before the virtio modules: loading virtio_blk reads the disk (its partition table).
echo "boot $VM"

for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
  insmod "/lib/modules/$m.ko" 2>/dev/null
done
off() { echo "poweroff: $*"; echo o > /proc/sysrq-trigger; sleep 10; }

n=0
while [ ! -b /dev/vda ]; do
  n=$((n + 1))
  [ "$n" -gt 100 ] && off "no disk /dev/vda"
  usleep 50000
done

line=$(dd if=/dev/vda bs=4096 count=1 iflag=direct 2>/dev/null | head -c 200 | head -n 1 | tr -d '\000')
case "$line" in
  "") counter=0 ;;
  "STRATAQ $VM "*) counter=${line##* } ;;
  *) off "block 0 is not vm $VM's: $line" ;;
esac
case "$counter" in ''|*[!0-9]*) off "bad counter in block 0: $line" ;; esac
echo "ready $VM counter $counter"

while :; do
  counter=$((counter + 1))
  { printf 'STRATAQ %s %d\n' "$VM" "$counter"; head -c 4096 /dev/zero; } | head -c 4096 > /tmp/block
  dd if=/tmp/block of=/dev/vda bs=4096 count=1 oflag=direct conv=fsync,notrunc 2>/tmp/dd.err || off "write of counter $counter failed: $(cat /tmp/dd.err)"
  echo "counter $counter"
  usleep $((INTERVAL_MS * 1000))
done

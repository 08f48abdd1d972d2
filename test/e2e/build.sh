#!/usr/bin/env bash
# Builds the lab artifacts into test/e2e/work/: the vfio_pci_lab variant module
# (installed into the unpacked kernel's extra/ and depmod-ed), the hot-reset
# oracle, and the busybox initramfs. Needs setup.sh to have run.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$HERE/cache"
WORK="$HERE/work"
KVER="$(cat "$CACHE/KVER")"
KROOT="$CACHE/kernel"
MODDIR="$KROOT/lib/modules/$KVER"
HDRS="$KROOT/usr/src/linux-headers-$KVER"
COMMON="$KROOT/usr/src/linux-headers-${KVER%-amd64}-common"

log() { echo "[e2e-build] $*" >&2; }
mkdir -p "$WORK"

# --- variant module ---------------------------------------------------------
# Debian's headers Makefile includes the common tree by absolute /usr/src path;
# point it at our unpacked copy instead (rewritten each time: the checkout may move).
echo "include $COMMON/Makefile" > "$HDRS/Makefile"
rm -rf "$WORK/variant" && mkdir -p "$WORK/variant"
cp "$HERE/variant/vfio_pci_lab.c" "$HERE/variant/Kbuild" "$WORK/variant/"
log "building vfio_pci_lab.ko"
make -s -C "$HDRS" M="$WORK/variant" modules >"$WORK/variant/build.log" 2>&1 \
  || { cat "$WORK/variant/build.log" >&2; exit 1; }
mkdir -p "$MODDIR/extra"
cp "$WORK/variant/vfio_pci_lab.ko" "$MODDIR/extra/"
depmod -b "$KROOT" "$KVER"
grep -q '^alias vfio_pci:v00008086d000010D3sv\*sd\*bc\*sc\*i\* vfio_pci_lab$' "$MODDIR/modules.alias" \
  || { log "depmod did not produce the vfio_pci_lab alias"; exit 1; }

# --- oracle -------------------------------------------------------------------
log "building hotreset oracle"
gcc -O2 -Wall -Wextra -static -o "$WORK/hotreset" "$HERE/oracle/hotreset.c" 2>/dev/null \
  || gcc -O2 -Wall -Wextra -o "$WORK/hotreset" "$HERE/oracle/hotreset.c"
log "building probe oracle"
gcc -O2 -Wall -Wextra -static -o "$WORK/probe" "$HERE/oracle/probe.c" 2>/dev/null \
  || gcc -O2 -Wall -Wextra -o "$WORK/probe" "$HERE/oracle/probe.c"

# --- initramfs ----------------------------------------------------------------
log "building initramfs"
IR="$WORK/initramfs"
rm -rf "$IR" && mkdir -p "$IR"/{bin,dev,proc,sys,newroot,lower,rw,modules}
cp /bin/busybox "$IR/bin/busybox"
ln -s busybox "$IR/bin/sh"
# Modules for 9p over virtio and the overlay, in dependency order, each once.
: > "$IR/modules/order"
for m in virtio_pci 9pnet_virtio 9p overlay; do
  modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  cp "$ko" "$IR/modules/"
  basename "$ko" >> "$IR/modules/order"
done
cp "$HERE/guest/init" "$IR/init"
chmod +x "$IR/init"
( cd "$IR" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$WORK/initramfs.cpio.gz"

# --- stage --------------------------------------------------------------------
# The guest runs a frozen copy of the built checkout: the shared work tree may be
# recompiled by someone else while a VM reads it over 9p.
log "staging the built checkout"
STAGE="$WORK/stage"
rm -rf "$STAGE" && mkdir -p "$STAGE/test/e2e/work"
for p in package.json bin dist node_modules schema; do cp -a "$HERE/../../$p" "$STAGE/"; done
cp -a "$HERE/guest" "$STAGE/test/e2e/"
cp "$WORK/hotreset" "$STAGE/test/e2e/work/"
cp "$WORK/probe" "$STAGE/test/e2e/work/"
log "artifacts ready in $WORK"

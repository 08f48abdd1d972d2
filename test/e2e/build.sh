#!/usr/bin/env bash
# Builds the lab artifacts into test/e2e/work/: per lab kernel (`debian`, `cdev`: the
# arguments, default debian) the vfio_pci_lab variant module (installed into that kernel's
# extra/ and depmod-ed) and the busybox initramfs, in work/<kernel>/; once, the hot-reset
# oracle and the staged checkout. Needs setup.sh (and kernel/build-cdev.sh for cdev).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$HERE/cache"
WORK="$HERE/work"
log() { echo "[e2e-build] $*" >&2; }
mkdir -p "$WORK"
[ "$#" -gt 0 ] || set -- debian

build_kernel_artifacts() { # FLAVOUR
  local flavour="$1" env="$CACHE/kernel-$1.env" KROOT KVER KBUILD MODDIR KW
  [ -f "$env" ] || { log "no $env: run setup.sh (debian) or kernel/build-cdev.sh (cdev) first"; exit 1; }
  KROOT="$CACHE/$(sed -n 's/^KROOT=//p' "$env")"
  KVER="$(sed -n 's/^KVER=//p' "$env")"
  KBUILD="$CACHE/$(sed -n 's/^KBUILD=//p' "$env")"
  MODDIR="$KROOT/lib/modules/$KVER"
  KW="$WORK/$flavour"
  mkdir -p "$KW"

  # --- variant module ---------------------------------------------------------
  if [ "$flavour" = debian ]; then
    # Debian's headers Makefile includes the common tree by absolute /usr/src path;
    # point it at our unpacked copy instead (rewritten each time: the checkout may move).
    echo "include $KROOT/usr/src/linux-headers-${KVER%-amd64}-common/Makefile" > "$KBUILD/Makefile"
  fi
  rm -rf "$KW/variant" && mkdir -p "$KW/variant"
  cp "$HERE/variant/vfio_pci_lab.c" "$HERE/variant/Kbuild" "$KW/variant/"
  log "$flavour: building vfio_pci_lab.ko for $KVER"
  make -s -C "$KBUILD" M="$KW/variant" modules >"$KW/variant/build.log" 2>&1 \
    || { cat "$KW/variant/build.log" >&2; exit 1; }
  mkdir -p "$MODDIR/extra"
  cp "$KW/variant/vfio_pci_lab.ko" "$MODDIR/extra/"
  depmod -b "$KROOT" "$KVER"
  grep -q '^alias vfio_pci:v00008086d000010D3sv\*sd\*bc\*sc\*i\* vfio_pci_lab$' "$MODDIR/modules.alias" \
    || { log "depmod did not produce the vfio_pci_lab alias"; exit 1; }

  # --- initramfs ----------------------------------------------------------------
  log "$flavour: building initramfs"
  local IR="$KW/initramfs"
  rm -rf "$IR" && mkdir -p "$IR"/{bin,dev,proc,sys,newroot,lower,rw,modules}
  cp /bin/busybox "$IR/bin/busybox"
  ln -s busybox "$IR/bin/sh"
  # Modules for 9p over virtio and the overlay, in dependency order, each once
  # (none where the kernel has them built in, as the cdev kernel does).
  : > "$IR/modules/order"
  for m in virtio_pci 9pnet_virtio 9p overlay; do
    modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
  done | awk '!seen[$0]++' | while read -r ko; do
    cp "$ko" "$IR/modules/"
    basename "$ko" >> "$IR/modules/order"
  done
  cp "$HERE/guest/init" "$IR/init"
  chmod +x "$IR/init"
  ( cd "$IR" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$KW/initramfs.cpio.gz"
}

for flavour in "$@"; do
  case "$flavour" in
    debian|cdev) build_kernel_artifacts "$flavour" ;;
    *) log "unknown lab kernel '$flavour' (debian or cdev)"; exit 2 ;;
  esac
done

# --- oracle -------------------------------------------------------------------
# With the cdev kernel's uapi headers when it is built (its cdev mode needs iommufd.h, which
# Debian 12's linux-libc-dev lacks); the group mode works the same with either.
log "building hotreset oracle"
oracle_inc=()
if [ -f "$CACHE/kernel-cdev.env" ]; then
  oracle_inc=(-I "$CACHE/$(sed -n 's/^KHEADERS=//p' "$CACHE/kernel-cdev.env")")
fi
gcc -O2 -Wall -Wextra "${oracle_inc[@]}" -static -o "$WORK/hotreset" "$HERE/oracle/hotreset.c" 2>/dev/null \
  || gcc -O2 -Wall -Wextra "${oracle_inc[@]}" -o "$WORK/hotreset" "$HERE/oracle/hotreset.c"
log "building probe oracle"
gcc -O2 -Wall -Wextra "${oracle_inc[@]}" -static -o "$WORK/probe" "$HERE/oracle/probe.c" 2>/dev/null \
  || gcc -O2 -Wall -Wextra "${oracle_inc[@]}" -o "$WORK/probe" "$HERE/oracle/probe.c"

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

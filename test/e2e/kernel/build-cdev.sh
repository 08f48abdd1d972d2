#!/usr/bin/env bash
# Builds the lab's cdev kernel (Linux 6.12 with IOMMUFD and VFIO_DEVICE_CDEV) from Debian's
# linux-source-6.12 package, once: the result is cached in test/e2e/cache/cdev-<hash>/, keyed by
# a hash of cdev.config, this script and the source package's version, so a second run only
# checks. Debian builds its own kernels without CONFIG_IOMMUFD, hence this.
#
# Layout of a finished cache entry (what test/e2e/build.sh and lab/vm.ts use):
#   root/boot/vmlinuz-$KVER  root/lib/modules/$KVER/   the kernel and its modules
#   build/                                               the O= tree, for out-of-tree modules
#   headers/include/                                     uapi headers (the oracle's iommufd.h)
#   src/                                                 the unpacked source (build/ points here)
#   KVER  build-seconds  DONE
# and test/e2e/cache/kernel-cdev.env names the entry for the lab (KROOT, KVER, KBUILD).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
E2E="$(cd "$HERE/.." && pwd)"
CACHE="$E2E/cache"
CONFIG="$HERE/cdev.config"
export DEBIAN_FRONTEND=noninteractive

log() { echo "[cdev-kernel] $*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }

mkdir -p "$CACHE"

# --- the source package, from bookworm-backports, with apt state of our own ---------------
# A private sources list and lists directory: the machine's apt configuration is not touched.
APT="$CACHE/apt-bpo"
mkdir -p "$APT/lists/partial" "$APT/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" \
  > "$APT/sources.list"
apt_bpo() {
  apt-get -o Dir::Etc::SourceList="$APT/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT" -o Dir::Cache::Archives="$APT/archives" \
    -o APT::Sandbox::User=root "$@"
}
apt_cache_bpo() {
  apt-cache -o Dir::Etc::SourceList="$APT/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT" "$@"
}

srcver=""
if apt_bpo -qq update 2>/dev/null; then
  srcver="$(apt_cache_bpo show linux-source-6.12 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -n1 || true)"
fi
if [ -z "$srcver" ]; then
  # Offline: use the newest finished entry, if any.
  if [ -f "$CACHE/kernel-cdev.env" ]; then
    log "bookworm-backports unreachable; keeping the cached kernel"
    exit 0
  fi
  log "cannot find linux-source-6.12 in bookworm-backports and nothing is cached"; exit 1
fi

key="$( { cat "$CONFIG" "${BASH_SOURCE[0]}"; echo "$srcver"; } | sha256sum | cut -c1-16)"
OUT="$CACHE/cdev-$key"
write_env() {
  printf 'KROOT=%s\nKVER=%s\nKBUILD=%s\nKHEADERS=%s\nKFLAVOUR=cdev\n' \
    "cdev-$key/root" "$(cat "$OUT/KVER")" "cdev-$key/build" "cdev-$key/headers/include" > "$CACHE/kernel-cdev.env"
}
if [ -f "$OUT/DONE" ]; then
  log "kernel $(cat "$OUT/KVER") (linux-source-6.12 $srcver) already built in $(basename "$OUT")"
  write_env
  exit 0
fi

# --- build tools ----------------------------------------------------------------------------
need_pkgs=()
for p in build-essential bc bison flex libelf-dev libssl-dev cpio kmod xz-utils rsync; do
  dpkg -s "$p" >/dev/null 2>&1 || need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

started=$(date +%s)
rm -rf "$OUT" && mkdir -p "$OUT"
# Older entries are superseded (their hash no longer matches): keep the disk in check.
find "$CACHE" -maxdepth 1 -name 'cdev-*' ! -name "cdev-$key" -exec rm -rf {} +

log "downloading linux-source-6.12 $srcver"
( cd "$APT/archives" && apt_bpo -qq download "linux-source-6.12=$srcver" )
deb="$(ls -t "$APT/archives"/linux-source-6.12_*.deb | head -n1)"
log "unpacking $(basename "$deb")"
dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards './usr/src/linux-source-6.12.tar.*' \
  | tar -xJ -C "$OUT"
mv "$OUT/linux-source-6.12" "$OUT/src"
rm -f "$deb"

# --- configuration: defconfig + KVM guest + our fragment, checked --------------------------
log "configuring"
make -s -C "$OUT/src" O="$OUT/build" x86_64_defconfig >/dev/null
make -s -C "$OUT/src" O="$OUT/build" kvm_guest.config >/dev/null
"$OUT/src/scripts/kconfig/merge_config.sh" -m -O "$OUT/build" "$OUT/build/.config" "$CONFIG" >/dev/null
make -s -C "$OUT/src" O="$OUT/build" olddefconfig >/dev/null
# Kconfig silently drops a symbol whose dependencies are unmet: every line of the fragment
# must have survived, or the kernel would lack what the lab exists to test.
missing=0
while IFS= read -r line; do
  case "$line" in
    CONFIG_*=*) grep -qxF -- "$line" "$OUT/build/.config" || { log "config lost: $line"; missing=1; } ;;
    "# CONFIG_"*" is not set")
      sym="${line#\# }"; sym="${sym%% *}"
      ! grep -q "^$sym=" "$OUT/build/.config" || { log "config still set: $sym"; missing=1; } ;;
  esac
done < "$CONFIG"
[ "$missing" -eq 0 ] || exit 1

# --- build --------------------------------------------------------------------------------
jobs="$(nproc)"
log "building bzImage and modules with -j$jobs (about half an hour on 2 cores)"
make -s -C "$OUT/src" O="$OUT/build" -j"$jobs" bzImage modules >"$OUT/build.log" 2>&1 \
  || { tail -n 40 "$OUT/build.log" >&2; exit 1; }
kver="$(make -s -C "$OUT/src" O="$OUT/build" kernelrelease)"
mkdir -p "$OUT/root/boot"
make -s -C "$OUT/src" O="$OUT/build" INSTALL_MOD_PATH="$OUT/root" DEPMOD=/sbin/depmod modules_install >/dev/null
cp "$OUT/build/arch/x86/boot/bzImage" "$OUT/root/boot/vmlinuz-$kver"
cp "$OUT/build/.config" "$OUT/root/boot/config-$kver"
make -s -C "$OUT/src" O="$OUT/build" INSTALL_HDR_PATH="$OUT/headers" headers_install >/dev/null
# The lab points /lib/modules/$KVER at root/lib/modules/$KVER; the build links are not needed there.
rm -f "$OUT/root/lib/modules/$kver/build" "$OUT/root/lib/modules/$kver/source"
# Object files are what makes the tree big; out-of-tree modules need headers, scripts and
# Module.symvers only.
find "$OUT/build" -name '*.o' ! -path '*/scripts/*' -delete
echo "$kver" > "$OUT/KVER"
echo $(( $(date +%s) - started )) > "$OUT/build-seconds"
touch "$OUT/DONE"
write_env
log "kernel $kver built in $(cat "$OUT/build-seconds")s into $(basename "$OUT")"

#!/usr/bin/env bash
# Installs what the e2e lab needs, from Debian's packages only, and unpacks a
# Debian 6.1 kernel (image + matching headers + kbuild) into test/e2e/cache/.
# Idempotent: a second run with everything present does nothing but checks.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$HERE/cache"
export DEBIAN_FRONTEND=noninteractive

log() { echo "[e2e-setup] $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq
    apt_updated=1
  fi
}

# --- host tools ---------------------------------------------------------
need_pkgs=()
need() { # need COMMAND PACKAGE: install PACKAGE when COMMAND is missing
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] || need_pkgs+=("$2")
}
need qemu-system-x86_64 qemu-system-x86
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
need depmod kmod
need cpio cpio
need make make
need gcc gcc
# Debian's kbuild compiles modules with gcc-12 (the kernel's own compiler).
need gcc-12 gcc-12
# The guest chroots into this machine's root: scenarios use its ip(8) and tar(1).
need ip iproute2
need tar tar
need gzip gzip
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  apt_update_once
  log "installing ${need_pkgs[*]}"
  as_root apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

# --- kernel ---------------------------------------------------------------
# The ABI (e.g. 6.1.0-56) comes from the bookworm meta package, so the image
# and headers always belong together; fall back to the newest 6.1 ABI listed.
pick_abi() {
  local abi
  abi="$(apt-cache depends linux-headers-amd64 2>/dev/null \
    | sed -n 's/.*Depends: linux-headers-\(6\.1\.0-[0-9]*\)-amd64$/\1/p' | head -n1)"
  if [ -z "$abi" ]; then
    abi="$(apt-cache search --names-only '^linux-headers-6\.1\.0-[0-9]+-amd64$' \
      | sed -n 's/^linux-headers-\(6\.1\.0-[0-9]*\)-amd64 .*/\1/p' | sort -V | tail -n1)"
  fi
  echo "$abi"
}

real_pkg() { # true if apt has a downloadable (non-virtual) package by this name
  # Not `| grep -q`: under pipefail, grep quitting early makes apt-cache die of SIGPIPE.
  local info
  info="$(apt-cache show "$1" 2>/dev/null || true)"
  grep -q '^Filename:' <<<"$info"
}

# What the lab reads to find this kernel (test/e2e/build.sh, lab/vm.ts); paths relative to the cache.
write_env() {
  local kver; kver="$(cat "$CACHE/KVER")"
  printf 'KROOT=%s\nKVER=%s\nKBUILD=%s\nKFLAVOUR=debian\n' \
    kernel "$kver" "kernel/usr/src/linux-headers-$kver" > "$CACHE/kernel-debian.env"
}
if [ -f "$CACHE/KVER" ] && [ -d "$CACHE/kernel/lib/modules/$(cat "$CACHE/KVER")/kernel" ] \
   && [ -f "$CACHE/kernel/boot/vmlinuz-$(cat "$CACHE/KVER")" ] \
   && [ -d "$CACHE/kernel/usr/src/linux-headers-$(cat "$CACHE/KVER")" ]; then
  log "kernel $(cat "$CACHE/KVER") already unpacked"
  write_env
  exit 0
fi

apt_update_once
abi="$(pick_abi)"
[ -n "$abi" ] || { log "no linux 6.1 ABI found in apt"; exit 1; }
kver="$abi-amd64"
image="linux-image-$kver"
real_pkg "$image" || image="linux-image-$kver-unsigned"
real_pkg "$image" || { log "no downloadable $image"; exit 1; }
hdr_ver="$(apt-cache show "linux-headers-$kver" | sed -n 's/^Version: //p' | head -n1)"
pkgs=("$image" "linux-headers-$kver" "linux-headers-$abi-common"
      "linux-kbuild-6.1=$hdr_ver")
log "kernel $kver: downloading ${pkgs[*]}"

mkdir -p "$CACHE/debs"
rm -rf "$CACHE/kernel.tmp"
mkdir -p "$CACHE/kernel.tmp"
( cd "$CACHE/debs" && apt-get download -qq "${pkgs[@]}" )
for p in "${pkgs[@]}"; do
  name="${p%%=*}"
  deb="$(ls -t "$CACHE/debs/${name}"_*.deb | head -n1)"
  log "unpacking $(basename "$deb")"
  dpkg-deb -x "$deb" "$CACHE/kernel.tmp"
done
rm -rf "$CACHE/kernel"
mv "$CACHE/kernel.tmp" "$CACHE/kernel"
echo "$kver" > "$CACHE/KVER"
write_env
log "kernel $kver ready in $CACHE/kernel"

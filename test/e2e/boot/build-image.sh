#!/usr/bin/env bash
# Builds the boot lab's guest disk: a Debian bookworm root file system made with mmdebstrap
# from Debian's packages (packages.txt: systemd as PID 1, udevd, initramfs-tools, Debian's
# 6.1 kernel, ansible-core), this machine's Node copied in, the lab's step runner, as an ext4
# image made without a loop mount (mkfs.ext4 -d). The project itself is NOT in the image: each
# run shares it over 9p and the guest installs it (guest/lab-step), so a code change needs no
# rebuild. The image is cached in test/e2e/cache/boot-<key>/ (key: this script, packages.txt,
# guest/*, Node's version); a second run with the same key only prints the path.
# Prints the cache directory on stdout; logs on stderr. Runs as root (mmdebstrap --mode=root).
set -euo pipefail
# stdout carries the directory only: everything the build tools print goes to stderr.
exec 3>&1 1>&2
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="$(cd "$HERE/.." && pwd)/cache"
NODE="$(command -v node)"
log() { echo "[boot-image] $*" >&2; }

key="$( { cat "$HERE/build-image.sh" "$HERE/packages.txt" "$HERE"/guest/*; "$NODE" --version; } | sha256sum | cut -c1-16)"
OUT="$CACHE/boot-$key"
if [ -f "$OUT/ready" ]; then
  log "cached image $OUT"
  echo "$OUT" >&3
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
command -v mmdebstrap >/dev/null || { log "installing mmdebstrap"; apt-get update -qq; apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null; }
command -v qemu-img >/dev/null || { apt-get update -qq; apt-get install -y -qq --no-install-recommends qemu-utils >/dev/null; }

started=$(date +%s)
rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
ROOT="$OUT.tmp/root"
mapfile -t pkgs < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$HERE/packages.txt")
# The guest uses the same package sources as this machine.
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -s "$f" ] && grep -qv '^[[:space:]]*\(#\|$\)' "$f" && sources+=("$f")
done
[ "${#sources[@]}" -gt 0 ] || { log "no apt sources on this machine"; exit 1; }

log "mmdebstrap bookworm (${#pkgs[@]} packages) into $ROOT"
# initramfs: MODULES=list with the boot disk's drivers only, as on a server whose initramfs
# holds what mounts its root; scenario 2 adds host drivers to it as Debian's MODULES=most does.
mmdebstrap --mode=root --variant=minbase --quiet \
  --include="$(IFS=,; echo "${pkgs[*]}")" \
  --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"; echo MODULES=list > "$1/etc/initramfs-tools/conf.d/lab"' \
  --essential-hook='mkdir -p "$1/etc/initramfs-tools"; printf "%s\n" virtio_pci virtio_blk ext4 > "$1/etc/initramfs-tools/modules"' \
  --customize-hook="cp '$NODE' \"\$1/usr/local/bin/node\"" \
  --customize-hook="install -m 0755 '$HERE/guest/lab-step' \"\$1/usr/local/sbin/lab-step\"" \
  --customize-hook="install -m 0644 '$HERE/guest/lab-step.service' \"\$1/etc/systemd/system/lab-step.service\"" \
  --customize-hook='ln -sf /etc/systemd/system/lab-step.service "$1/etc/systemd/system/multi-user.target.wants/lab-step.service"' \
  --customize-hook='echo "/dev/vda / ext4 defaults,errors=remount-ro 0 1" > "$1/etc/fstab"; echo bootlab > "$1/etc/hostname"' \
  --customize-hook='mkdir -p "$1/var/log/journal"' \
  --customize-hook='chroot "$1" passwd -d root >/dev/null' \
  --customize-hook='for u in e2scrub_all.timer e2scrub_reap.service fstrim.timer apt-daily.timer apt-daily-upgrade.timer; do chroot "$1" systemctl mask "$u" >/dev/null 2>&1 || true; done' \
  --customize-hook='chroot "$1" update-initramfs -u -k all >/dev/null' \
  --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
  bookworm "$ROOT" "${sources[@]}"

kver="$(basename "$(ls -d "$ROOT"/lib/modules/*/ | head -n1)")"
mkdir -p "$OUT.tmp/boot"
cp -L "$ROOT/boot/vmlinuz-$kver" "$ROOT/boot/initrd.img-$kver" "$OUT.tmp/boot/"
echo "$kver" > "$OUT.tmp/KVER"
used_mb=$(du -sm "$ROOT" | cut -f1)
size_mb=$(( used_mb + used_mb / 2 + 512 ))
log "mkfs.ext4 -d ($used_mb MiB of files, ${size_mb} MiB image)"
mkfs.ext4 -q -F -L bootlab -d "$ROOT" "$OUT.tmp/base.raw" "${size_mb}M"
rm -rf "$ROOT"
secs=$(( $(date +%s) - started ))
disk_mb=$(du -sm "$OUT.tmp/base.raw" | cut -f1)
printf '{"key":"%s","kernel":"%s","buildSeconds":%d,"filesMiB":%d,"imageMiB":%d,"diskMiB":%d}\n' \
  "$key" "$kver" "$secs" "$used_mb" "$size_mb" "$disk_mb" > "$OUT.tmp/build.json"
touch "$OUT.tmp/ready"
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
# Older images (other keys) are not needed any more.
for d in "$CACHE"/boot-*; do [ "$d" = "$OUT" ] || rm -rf "$d"; done
log "image built in ${secs}s: $(cat "$OUT/build.json")"
echo "$OUT" >&3

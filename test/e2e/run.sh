#!/usr/bin/env bash
# `npm run test:e2e` (after tsc): installs and builds the lab, boots one QEMU VM
# per topology and lab kernel and reports the guest scenarios with Node's test runner.
# Env: LAB_KERNEL=debian|cdev|all (default all: Debian's 6.1 and the lab's 6.12 cdev kernel,
# built once and cached by kernel/build-cdev.sh), LAB_TOPOLOGIES=a,b (subset),
# LAB_VM_TIMEOUT=seconds per VM, LAB_PARALLEL=n.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

case "${LAB_KERNEL:-all}" in
  all|"") kernels=(debian cdev) ;;
  debian|cdev) kernels=("$LAB_KERNEL") ;;
  *) echo "LAB_KERNEL must be debian, cdev or all (got '$LAB_KERNEL')" >&2; exit 2 ;;
esac
export LAB_KERNEL="${LAB_KERNEL:-all}"

bash "$HERE/setup.sh"
for k in "${kernels[@]}"; do
  [ "$k" != cdev ] || bash "$HERE/kernel/build-cdev.sh"
done
bash "$HERE/build.sh" "${kernels[@]}"
[ -f "$REPO/dist/test/e2e/host/lab.test.js" ] || { echo "run tsc first (npm run test:e2e does)" >&2; exit 1; }

# Each part is bounded too, in case something outside the VMs hangs (the kernel build above
# is not counted: it has its own cache and log).
rc=0
if [ "${LAB_BOOT:-1}" != only ]; then
  timeout --kill-after=30 "${LAB_TOTAL_TIMEOUT:-$(( 1500 * ${#kernels[@]} ))}" \
    node --test-reporter=spec "$REPO/dist/test/e2e/host/lab.test.js" || rc=$?
fi
# The boot lab (test/e2e/boot, host/boot.test.ts): LAB_BOOT=0 skips it, LAB_BOOT=only runs it alone.
if [ "${LAB_BOOT:-1}" != 0 ]; then
  boot_image="$(bash "$HERE/boot/build-image.sh")" || exit 1
  LAB_BOOT_IMAGE="$boot_image" timeout --kill-after=30 "${LAB_BOOT_TIMEOUT:-1800}" \
    node --test-reporter=spec "$REPO/dist/test/e2e/host/boot.test.js" || rc=$?
fi
exit "$rc"

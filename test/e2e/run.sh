#!/usr/bin/env bash
# `npm run test:e2e` (after tsc): installs and builds the lab, boots one QEMU VM
# per topology and reports the guest scenarios with Node's test runner.
# Env: LAB_TOPOLOGIES=a,b (subset), LAB_VM_TIMEOUT=seconds per VM, LAB_PARALLEL=n.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
cd "$REPO"

bash "$HERE/setup.sh"
bash "$HERE/build.sh"
[ -f "$REPO/dist/test/e2e/host/lab.test.js" ] || { echo "run tsc first (npm run test:e2e does)" >&2; exit 1; }

# The whole run is bounded too, in case something outside the VMs hangs.
rc=0
if [ "${LAB_BOOT:-1}" != only ]; then
  timeout --kill-after=30 "${LAB_TOTAL_TIMEOUT:-2700}" \
    node --test-reporter=spec "$REPO/dist/test/e2e/host/lab.test.js" || rc=$?
fi
# The boot lab (test/e2e/boot, host/boot.test.ts): LAB_BOOT=0 skips it, LAB_BOOT=only runs it alone.
if [ "${LAB_BOOT:-1}" != 0 ]; then
  boot_image="$(bash "$HERE/boot/build-image.sh")" || exit 1
  LAB_BOOT_IMAGE="$boot_image" timeout --kill-after=30 "${LAB_BOOT_TIMEOUT:-1800}" \
    node --test-reporter=spec "$REPO/dist/test/e2e/host/boot.test.js" || rc=$?
fi
exit "$rc"

#!/usr/bin/env bash
# Re-captures test/fixtures/lab-*/ from the real kernel (see host/capture.ts).
# LAB_KERNEL=debian (default) writes lab-<topology>/, LAB_KERNEL=cdev lab-<topology>-cdev/.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE/../.."
export LAB_KERNEL="${LAB_KERNEL:-debian}"
npx tsc -p tsconfig.json
bash "$HERE/setup.sh"
[ "$LAB_KERNEL" != cdev ] || bash "$HERE/kernel/build-cdev.sh"
bash "$HERE/build.sh" "$LAB_KERNEL"
exec timeout 1500 node dist/test/e2e/host/capture.js

#!/usr/bin/env bash
# Re-captures test/fixtures/lab-*/ from the real kernel (see host/capture.ts).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE/../.."
npx tsc -p tsconfig.json
bash "$HERE/setup.sh"
bash "$HERE/build.sh"
exec timeout 1500 node dist/test/e2e/host/capture.js

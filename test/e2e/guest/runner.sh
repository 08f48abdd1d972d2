#!/bin/bash
# Runs inside the guest's chroot (the host's own root, read-only + overlay).
# Loads host drivers the way udev coldplug would, then runs the scenarios with
# Node's test runner; results go to /lab-out for the host to relay.
REPO="$1"; TOPO="$2"; MODE="$3"; KFLAV="${4:-debian}"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LAB_TOPOLOGY="$TOPO" LAB_REPO="$REPO" LAB_OUT=/lab-out LAB_KERNEL="$KFLAV"
export LAB_ORACLE="$REPO/test/e2e/work/hotreset"
cd "$REPO" || exit 1

# Coldplug: load the driver for every PCI device's modalias.
for f in /sys/bus/pci/devices/*/modalias; do modprobe -q "$(cat "$f")" 2>/dev/null; done
# Wait until the kernel has finished probing (nvme probes asynchronously).
for _ in $(seq 50); do
  pending=0
  for d in /sys/bus/pci/devices/*; do
    [ -e "$d/driver" ] || { modprobe -qR "$(cat "$d/modalias")" >/dev/null 2>&1 && pending=1; }
  done
  [ "$pending" = 0 ] && break
  sleep 0.2
done
echo "lab-runner: drivers loaded"
node "$REPO/dist/test/e2e/lab/prepare-guest.js" || echo "lab-runner: prepare failed"

case "$MODE" in
  shell) /bin/bash -i </dev/console >/dev/console 2>&1 ;;
  capture) node "$REPO/dist/test/e2e/lab/capture-guest.js"; echo $? > /lab-out/rc ;;
  # For lab development: run a throwaway script from the (gitignored) work dir.
  debug) bash "$REPO/test/e2e/work/debug.sh" 2>&1 | tee /lab-out/debug.txt ;;
  *)
    node --test --test-concurrency=1 \
      --test-reporter=tap --test-reporter-destination=stdout \
      --test-reporter="$REPO/dist/test/e2e/lab/jsonl-reporter.js" --test-reporter-destination=/lab-out/results.jsonl \
      "$REPO"/dist/test/e2e/scenarios/*.test.js
    echo $? > /lab-out/rc
    ;;
esac
dmesg > /lab-out/dmesg.txt 2>/dev/null
sync

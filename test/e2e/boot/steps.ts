/**
 * The boot lab's guest steps, as bash scripts the host writes to the labin share. Every boot
 * first records what the boot left (`collect`), then does its step. Nothing here comes from
 * input: the addresses are the topology's constants, checked against their grammar anyway.
 */
import { DEVICES, NIC, type BootDevice } from './topology.js';

const BDF = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/;

function bdfs(devices: readonly BootDevice[]): string {
  for (const d of devices) if (!BDF.test(d.bdf)) throw new Error(`not a PCI address: ${JSON.stringify(d.bdf)}`);
  return devices.map((d) => d.bdf).join(' ');
}

/** Shared functions: `drivers FILE`, `collect` (what this boot left, before the step acts). */
export function stepLib(devices: readonly BootDevice[] = DEVICES): string {
  return `set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin NO_COLOR=1
DEVICES="${bdfs(devices)}"
# One line a device: ADDRESS present DRIVER OVERRIDE (- for none), or ADDRESS absent.
drivers() {
  local b d drv ov
  for b in $DEVICES; do
    d=/sys/bus/pci/devices/$b
    if [ -e "$d" ]; then
      drv=-; [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
      ov=$(cat "$d/driver_override" 2>/dev/null); [ -n "$ov" ] && [ "$ov" != "(null)" ] || ov=-
      echo "$b present $drv $ov"
    else
      echo "$b absent"
    fi
  done > "$1"
}
collect() {
  drivers boot.drivers
  cut -d' ' -f1 /proc/uptime > uptime.txt
  dmesg > dmesg.txt
  journalctl -b --no-pager -o short-monotonic > journal.txt 2>&1
  journalctl -b --no-pager -o json -u vfioctl.service -u 'vfioctl-hotplug@*' > vfioctl-journal.jsonl 2>&1
  systemctl show vfioctl.service -p LoadState -p ActiveState -p Result -p ExecMainStatus \\
    -p ExecMainStartTimestampMonotonic -p ExecMainExitTimestampMonotonic > unit.txt
  systemctl show systemd-udev-trigger.service -p ExecMainStartTimestampMonotonic > trigger.txt
  systemctl list-units --failed --plain --no-legend --no-pager > failed.txt 2>&1
  systemctl is-system-running > system-state.txt 2>&1
  if [ -f /etc/vfioctl/desired.json ]; then
    vfioctl apply --skip-missing --json /etc/vfioctl/desired.json > apply.json 2> apply.err; echo $? > apply.rc
  fi
}
`;
}

/** A boot's script: collect, then the step's own commands. */
export function stepScript(body: string, devices: readonly BootDevice[] = DEVICES): string {
  return `#!/bin/bash\n: > started\n${stepLib(devices)}\ncollect\n# --- step ---\n${body}\n`;
}

/** persist the desired state (labin/desired.json), as an admin would. */
export const PERSIST = `cp /lab/in/desired.json /root/desired.json
vfioctl persist --json /root/desired.json > persist.json 2> persist.err; echo $? > persist.rc`;

/** Put host drivers in the initramfs (as Debian's MODULES=most does) and rebuild it. */
export const HOST_DRIVERS_IN_INITRAMFS = `printf '%s\\n' ${DEVICES.map((d) => d.hostDriver).join(' ')} >> /etc/initramfs-tools/modules
update-initramfs -u > update-initramfs.log 2>&1; echo $? > update-initramfs.rc
lsinitramfs "/boot/initrd.img-$(uname -r)" > lsinitramfs.txt`;

export const REBUILD_INITRAMFS = `update-initramfs -u > update-initramfs.log 2>&1; echo $? > update-initramfs.rc
lsinitramfs "/boot/initrd.img-$(uname -r)" > lsinitramfs.txt`;

export const PERSIST_REMOVE = `vfioctl persist --remove --json > remove.json 2> remove.err; echo $? > remove.rc`;

/**
 * Hotplug with the host driver loaded, \`times\` times: remove the NIC through sysfs, rescan,
 * wait (60 s at most) until udev and the unit the rule started are done, record the driver.
 * Every other time udevd's queue is held across the rescan, so the kernel attaches the device
 * before the rule can set driver_override: e1000e takes it for sure, the race's bad side.
 * hotplug.txt: ITERATION MODE(plain|held) DRIVER OVERRIDE MILLISECONDS; the kernel log gets
 * "bootlab: hot-add N begin|end" around each.
 */
export function hotplug(times: number): string {
  if (!Number.isInteger(times) || times < 1 || times > 20) throw new Error(`hotplug: times ${times}`);
  return `modprobe e1000e; echo $? > modprobe.rc
NIC=${bdfs([NIC])}
driver_of() { local l=/sys/bus/pci/devices/$NIC/driver; if [ -e "$l" ]; then basename "$(readlink "$l")"; else echo -; fi; }
: > hotplug.txt
for i in $(seq ${times}); do
  mode=plain; [ $((i % 2)) -eq 0 ] && mode=held
  echo 1 > /sys/bus/pci/devices/$NIC/remove
  udevadm settle --timeout=30
  echo "bootlab: hot-add $i begin" > /dev/kmsg; t0=$(date +%s%N)
  [ $mode = held ] && udevadm control --stop-exec-queue
  echo 1 > /sys/bus/pci/rescan
  if [ $mode = held ]; then
    for k in $(seq 100); do [ "$(driver_of)" != - ] && break; sleep 0.1; done
    echo "$i held: bound to $(driver_of) before udev ran" >> hotplug.log
    udevadm control --start-exec-queue
  fi
  for k in $(seq 600); do
    state=$(systemctl is-active "vfioctl-hotplug@$NIC.service" 2>/dev/null)
    [ "$(driver_of)" = vfio-pci ] && [ "$state" != activating ] && break
    sleep 0.1
  done
  udevadm settle --timeout=30
  t1=$(date +%s%N); echo "bootlab: hot-add $i end" > /dev/kmsg
  ov=$(cat /sys/bus/pci/devices/$NIC/driver_override 2>/dev/null); [ -n "$ov" ] || ov=-
  echo "$i $mode $(driver_of) $ov $(( (t1 - t0) / 1000000 ))" >> hotplug.txt
done
dmesg > dmesg-after.txt
journalctl -b --no-pager -o json -u 'vfioctl-hotplug@*' > hotplug-journal.jsonl 2>&1`;
}

/**
 * The Ansible module under Debian's ansible-core, connection local: converge, converge again,
 * --check on another state, a bad entry; and vfioctl's own answer to that entry, to compare.
 */
export const ANSIBLE = `export ANSIBLE_COLLECTIONS_PATH=/opt/vfioctl/contrib/ansible \\
  ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_INVENTORY_UNPARSED_WARNING=False ANSIBLE_NOCOLOR=1 HOME=/root
# ansible-core has no json stdout callback (that is ansible.posix): its tree callback writes each
# host's task result as JSON, tree-NAME/localhost (the playbook has one task).
play() { # NAME VARS [OPTIONS...]
  local name=$1 vars=$2; shift 2
  local t0=$(date +%s%N)
  ANSIBLE_CALLBACKS_ENABLED=ansible.builtin.tree ANSIBLE_CALLBACK_TREE_DIR="$PWD/tree-$name" \\
  ansible-playbook -i localhost, -c local -e ansible_python_interpreter=/usr/bin/python3 \\
    -e @/lab/in/$vars "$@" /lab/in/playbook.yml > ansible-$name.out 2> ansible-$name.err
  echo $? > ansible-$name.rc
  echo $(( ($(date +%s%N) - t0) / 1000000 )) > ansible-$name.ms
  drivers ansible-$name.drivers
}
play converge converge.json
play again converge.json
play check other.json --check --diff
play bad bad.json
vfioctl apply --json -- - < /lab/in/bad-desired.json > bad-direct.json 2> bad-direct.err; echo $? > bad-direct.rc
# The README's fleet playbook parses and its module resolves.
ansible-playbook --syntax-check -i /lab/in/inventory.ini /lab/in/site.yml > fleet-syntax.txt 2>&1
echo $? > fleet-syntax.rc`;

/** The lab's playbook: one task, the module, with the devices from the extra vars. */
export const PLAYBOOK = `- hosts: all
  gather_facts: false
  tasks:
    - name: VFIO bindings
      vfioctl.vfio.vfio_bindings:
        devices: "{{ devices }}"
`;

/** The README's fleet example: the ini block after "# inventory.ini", the yaml one after "# site.yml". */
export function readmeFleet(readme: string): { inventory: string; playbook: string } {
  const block = (lang: string, first: string) => {
    const m = new RegExp('```' + lang + '\\n(' + first.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '[^\\n]*\\n[\\s\\S]*?)```').exec(readme);
    if (!m) throw new Error(`README: no \`\`\`${lang} block starting with "${first}"`);
    return m[1]!;
  };
  return { inventory: block('ini', '# inventory.ini'), playbook: block('yaml', '# site.yml') };
}

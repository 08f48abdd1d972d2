#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: vfioctl developers
# Apache-2.0, as vfioctl (package.json)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
---
module: vfio_bindings
short_description: Bind PCI devices to VFIO drivers with vfioctl
description:
  - Converges the host's driver bindings to a list of devices with C(vfioctl apply), with
    vfioctl's safety checks (IOMMU group viability, host use, variant match) and rollback;
    if any device is refused nothing is changed and the task fails.
  - With I(persist=true), also installs the state for boot with C(vfioctl persist)
    (udev rule, systemd unit, initramfs-tools hook and dracut module).
  - Check mode runs vfioctl with C(--dry-run); diff mode shows each device's driver before and after.
  - vfioctl must be installed on the managed host.
version_added: "0.1.0"
options:
  devices:
    description:
      - The entries of vfioctl's desired-state file.
    type: list
    elements: dict
    required: true
    suboptions:
      match:
        description:
          - A PCI address, C(VENDOR:DEVICE), C(group:N), or an interface or block device name.
        type: str
        required: true
      driver:
        description:
          - C(auto), C(vfio-pci), a vfio-pci variant driver, or C(host).
        type: str
        required: true
  state:
    description:
      - C(present) applies the entries as given.
      - C(absent) gives every listed device back to its host driver (each entry's driver
        becomes C(host)); with I(persist=true) it also removes the boot files (C(vfioctl persist --remove)).
    type: str
    choices: [present, absent]
    default: present
  persist:
    description:
      - Also make the state come back at boot (C(vfioctl persist)), or with I(state=absent) remove it.
      - When the initramfs hook or dracut module changes, C(rebuild_initramfs) is true; rebuild
        the initramfs (update-initramfs -u, dracut -f) and reboot.
    type: bool
    default: false
  root:
    description:
      - Run vfioctl on this directory tree instead of the host's /sys and /etc (C(--root)),
        for captured trees and tests.
    type: path
  executable:
    description:
      - Path of vfioctl; by default C(vfioctl) on PATH.
    type: path
notes:
  - Supports check mode and diff mode.
author:
  - vfioctl developers
'''

EXAMPLES = r'''
- name: NIC and GPU to VFIO, for boot too
  vfioctl.vfio.vfio_bindings:
    devices:
      - { match: "0000:01:00.0", driver: vfio-pci }
      - { match: "10de:2330", driver: auto }
    persist: true
  register: vfio

- name: Give them back
  vfioctl.vfio.vfio_bindings:
    devices:
      - { match: "0000:01:00.0", driver: vfio-pci }
    state: absent
'''

RETURN = r'''
actions:
  description: vfioctl apply's actions (bdf, from, to, status, reason, warnings; see vfioctl(8)).
  returned: always
  type: list
  elements: dict
persist:
  description: vfioctl persist's report (files with their actions), with I(persist=true).
  returned: when persist is true and apply succeeded
  type: dict
rebuild_initramfs:
  description: The initramfs hook or dracut module changed; rebuild the initramfs and reboot.
  returned: always
  type: bool
error:
  description: vfioctl's error document (code, exit, message, hint) when it failed.
  returned: failure
  type: dict
'''

import json
import re

# The desired-state file's grammar (src/provision/desired-state.ts, src/model/names.ts).
MATCH_RE = re.compile(r'^[A-Za-z0-9_.:@-]{1,64}$')
DRIVER_RE = re.compile(r'^(?!\.\.?$)[A-Za-z0-9_+.-]{1,64}$')
STATES = ('present', 'absent')


class EntryError(ValueError):
    pass


def validate_devices(devices):
    """The entries as a list of {'match', 'driver'}; EntryError names the first bad one."""
    if not isinstance(devices, list):
        raise EntryError('devices: must be a list of {"match", "driver"}')
    if not devices:
        raise EntryError('devices: must list at least one entry')
    out = []
    seen = {}
    for i, entry in enumerate(devices):
        at = 'devices[%d]' % i
        if not isinstance(entry, dict):
            raise EntryError('%s: must be a dict with match and driver' % at)
        for key in entry:
            if key not in ('match', 'driver'):
                raise EntryError('%s.%s: unknown field (allowed: match, driver)' % (at, key))
        for key, syntax, what in (('match', MATCH_RE, 'letters, digits, "_", ".", ":", "@" and "-"'),
                                  ('driver', DRIVER_RE, 'letters, digits, "_", "+", "." and "-"')):
            value = entry.get(key)
            if value is None:
                raise EntryError('%s.%s: missing' % (at, key))
            if not isinstance(value, str):
                raise EntryError('%s.%s: must be a string' % (at, key))
            if not syntax.match(value):
                raise EntryError('%s.%s: %s may hold only %s (1 to 64 characters)' % (at, key, json.dumps(value), what))
        folded = entry['match'].lower()
        if folded in seen:
            raise EntryError('%s.match: %s is already listed as devices[%d]' % (at, json.dumps(entry['match']), seen[folded]))
        seen[folded] = i
        out.append({'match': entry['match'], 'driver': entry['driver']})
    return out


def desired_document(devices, state):
    """The desired-state file for vfioctl: absent gives every device back to the host."""
    if state not in STATES:
        raise EntryError('state: must be one of %s' % ', '.join(STATES))
    entries = [{'match': d['match'], 'driver': 'host' if state == 'absent' else d['driver']} for d in devices]
    # One entry a line, so vfioctl's messages (<stdin>:LINE) tell entries apart: devices[i] is line i + 2.
    return '{"schemaVersion": 1, "devices": [\n' + ',\n'.join(json.dumps(e, sort_keys=True) for e in entries) + '\n]}\n'


def commands(executable, root, state, persist, check_mode):
    """vfioctl's argument vectors, in order: apply, then (with persist) persist or persist --remove.
    Options only, then `--` before the one operand (`-`: the file on standard input)."""
    base = [executable]
    if root:
        base.append('--root=' + root)
    dry = ['--dry-run'] if check_mode else []
    out = [('apply', base + ['apply', '--json'] + dry + ['--', '-'], True)]
    if persist:
        if state == 'absent':
            out.append(('persist', base + ['persist', '--remove', '--json'] + dry, False))
        else:
            out.append(('persist', base + ['persist', '--json'] + dry + ['--', '-'], True))
    return out


def parse_output(rc, stdout, stderr):
    """(document, failure message or None). vfioctl --json prints exactly one document; on a
    failure it is {"error": {...}} and the message is vfioctl's own."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        text = (stderr or '').strip() or (stdout or '').strip()
        return None, text or 'vfioctl exited with status %d and printed no JSON' % rc
    err = doc.get('error')
    if isinstance(err, dict):
        return doc, str(err.get('message') or 'vfioctl failed (exit %d)' % rc)
    if rc != 0:
        # A change refused or rolled back prints its report, not an error document.
        refused = ['%s: %s' % (a.get('bdf'), a.get('reason')) for a in doc.get('actions', []) if a.get('status') in ('refused', 'failed')]
        lines = [l for l in (stderr or '').splitlines() if l.startswith('vfioctl:')]
        msg = '; '.join(refused) or (lines[0][len('vfioctl:'):].strip() if lines else 'vfioctl failed (exit %d)' % rc)
        return doc, msg
    return doc, None


def diff_of(actions):
    """Ansible's diff: each device's driver before and after ((none) when unbound)."""
    def side(key):
        return ''.join('%s: %s\n' % (a.get('bdf'), a.get(key) or '(none)') for a in sorted(actions, key=lambda a: a.get('bdf') or ''))
    return {'before': side('from'), 'after': side('to'), 'before_header': 'drivers', 'after_header': 'drivers'}


def run_module():
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec=dict(
            devices=dict(type='list', elements='dict', required=True),
            state=dict(type='str', choices=list(STATES), default='present'),
            persist=dict(type='bool', default=False),
            root=dict(type='path'),
            executable=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        devices = validate_devices(p['devices'])
        document = desired_document(devices, p['state'])
    except EntryError as e:
        module.fail_json(msg=str(e), changed=False)
    executable = p['executable'] or module.get_bin_path('vfioctl', required=True)

    result = dict(changed=False, actions=[], rebuild_initramfs=False)
    for name, argv, stdin in commands(executable, p['root'], p['state'], p['persist'], module.check_mode):
        rc, out, err = module.run_command(argv, data=document if stdin else None, binary_data=True,
                                          environ_update={'NO_COLOR': '1'}, check_rc=False)
        doc, failure = parse_output(rc, out, err)
        if name == 'apply':
            if doc and isinstance(doc.get('actions'), list):
                result['actions'] = doc['actions']
        else:
            if doc and 'files' in doc:
                result['persist'] = doc
                result['rebuild_initramfs'] = bool(doc.get('rebuildInitramfs'))
        if failure is not None:
            if doc and isinstance(doc.get('error'), dict):
                result['error'] = doc['error']
            result['changed'] = result['changed'] or bool(doc and doc.get('changed'))
            module.fail_json(msg=failure, rc=rc, stderr=err, command=name, **result)
        result['changed'] = result['changed'] or bool(doc.get('changed'))
    if module._diff:
        result['diff'] = diff_of(result['actions'])
    module.exit_json(**result)


def main():
    run_module()


if __name__ == '__main__':
    main()

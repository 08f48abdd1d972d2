"""vfio_bindings' pure functions, without Ansible or a kernel; and, when ansible-core and a
vfioctl are there (VFIOCTL_BIN, VFIOCTL_TEST_ROOT: a --root tree), the module run through
`ansible localhost -m vfioctl.vfio.vfio_bindings` in check and diff mode.

    python3 -m unittest discover -s tests/unit      (from the collection's directory)
"""

import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTION = os.path.normpath(os.path.join(HERE, '..', '..'))
COLLECTIONS_PATH = os.path.normpath(os.path.join(COLLECTION, '..', '..', '..'))
MODULE = os.path.join(COLLECTION, 'plugins', 'modules', 'vfio_bindings.py')

spec = importlib.util.spec_from_file_location('vfio_bindings', MODULE)
vb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(vb)


class ValidateDevices(unittest.TestCase):
    def test_good_entries_pass_unchanged(self):
        entries = [{'match': '0000:01:00.0', 'driver': 'vfio-pci'}, {'match': '10de:2330', 'driver': 'auto'},
                   {'match': 'group:4', 'driver': 'mlx5_vfio_pci'}, {'match': 'eth2', 'driver': 'host'}]
        self.assertEqual(vb.validate_devices(entries), entries)

    def test_bad_entries_name_the_field(self):
        cases = [
            ('x', r'^devices: must be a list'),
            ([], r'^devices: must list at least one'),
            (['0000:01:00.0'], r'^devices\[0\]: must be a dict'),
            ([{'match': '0000:01:00.0'}], r'^devices\[0\]\.driver: missing$'),
            ([{'driver': 'vfio-pci'}], r'^devices\[0\]\.match: missing$'),
            ([{'match': '0000:01:00.0', 'driver': 'vfio-pci', 'when': 'x'}], r'^devices\[0\]\.when: unknown field'),
            ([{'match': '0000:01:00.0', 'driver': 3}], r'^devices\[0\]\.driver: must be a string'),
            ([{'match': '$(reboot)', 'driver': 'vfio-pci'}], r'^devices\[0\]\.match: "\$\(reboot\)" may hold only'),
            ([{'match': '0000:01:00.0', 'driver': 'vfio-pci"; RUN+="/bin/sh'}], r'^devices\[0\]\.driver: .* may hold only'),
            ([{'match': '0000:01:00.0', 'driver': '..'}], r'^devices\[0\]\.driver'),
            ([{'match': 'a' * 65, 'driver': 'vfio-pci'}], r'^devices\[0\]\.match'),
            ([{'match': 'ETH2', 'driver': 'vfio-pci'}, {'match': 'eth2', 'driver': 'host'}], r'^devices\[1\]\.match: "eth2" is already listed as devices\[0\]'),
        ]
        for devices, pattern in cases:
            with self.subTest(devices=devices):
                with self.assertRaisesRegex(vb.EntryError, pattern):
                    vb.validate_devices(devices)


class Documents(unittest.TestCase):
    def test_present_and_absent(self):
        devices = [{'match': '0000:01:00.0', 'driver': 'vfio-pci'}]
        self.assertEqual(json.loads(vb.desired_document(devices, 'present')), {'schemaVersion': 1, 'devices': devices})
        two = vb.desired_document(devices + [{'match': 'eth2', 'driver': 'auto'}], 'present').split('\n')
        self.assertEqual((json.loads(two[1].rstrip(','))['match'], json.loads(two[2])['match']), ('0000:01:00.0', 'eth2'), 'devices[i] on line i + 2')
        self.assertEqual(json.loads(vb.desired_document(devices, 'absent'))['devices'], [{'match': '0000:01:00.0', 'driver': 'host'}])
        with self.assertRaises(vb.EntryError):
            vb.desired_document(devices, 'latest')

    def test_commands(self):
        self.assertEqual(vb.commands('/usr/bin/vfioctl', None, 'present', False, False),
                         [('apply', ['/usr/bin/vfioctl', 'apply', '--json', '--', '-'], True)])
        self.assertEqual(vb.commands('v', '-r', 'present', True, True), [
            ('apply', ['v', '--root=-r', 'apply', '--json', '--dry-run', '--', '-'], True),
            ('persist', ['v', '--root=-r', 'persist', '--json', '--dry-run', '--', '-'], True),
        ], 'check mode is --dry-run; a root starting with "-" stays the option\'s value')
        self.assertEqual(vb.commands('v', None, 'absent', True, False)[1], ('persist', ['v', 'persist', '--remove', '--json'], False))

    def test_parse_output(self):
        err = {'schemaVersion': 1, 'error': {'code': 'no-such-device', 'exit': 3, 'message': 'device 0000:09:00.0: no such PCI device', 'hint': 'x'}}
        doc, msg = vb.parse_output(3, json.dumps(err), 'vfioctl: device 0000:09:00.0: no such PCI device\n')
        self.assertEqual(msg, 'device 0000:09:00.0: no such PCI device')
        self.assertEqual(doc['error']['code'], 'no-such-device')
        ok = {'schemaVersion': 1, 'changed': True, 'dryRun': False, 'actions': []}
        self.assertEqual(vb.parse_output(0, json.dumps(ok), ''), (ok, None))
        refused = {'schemaVersion': 1, 'changed': False, 'dryRun': False, 'actions': [{'bdf': '0000:03:01.0', 'status': 'refused', 'reason': 'group 4 is not viable'}]}
        self.assertEqual(vb.parse_output(4, json.dumps(refused), '')[1], '0000:03:01.0: group 4 is not viable')
        self.assertEqual(vb.parse_output(127, '', 'env: vfioctl: No such file\n'), (None, 'env: vfioctl: No such file'))

    def test_diff(self):
        d = vb.diff_of([{'bdf': '0000:02:00.0', 'from': None, 'to': 'vfio-pci'}, {'bdf': '0000:01:00.0', 'from': 'e1000e', 'to': 'vfio-pci'}])
        self.assertEqual(d['before'], '0000:01:00.0: e1000e\n0000:02:00.0: (none)\n')
        self.assertEqual(d['after'], '0000:01:00.0: vfio-pci\n0000:02:00.0: vfio-pci\n')


BIN = os.environ.get('VFIOCTL_BIN')
ROOT = os.environ.get('VFIOCTL_TEST_ROOT')


@unittest.skipUnless(shutil.which('ansible') and BIN and ROOT, 'needs ansible-core (apt-get install ansible-core), VFIOCTL_BIN and VFIOCTL_TEST_ROOT')
class ThroughAnsible(unittest.TestCase):
    def run_module(self, args, *flags):
        home = tempfile.mkdtemp()
        try:
            # ansible-core's ad-hoc callback: a diff block, then `localhost | CHANGED => {result}`.
            env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH, ANSIBLE_STDOUT_CALLBACK='minimal', ANSIBLE_FORCE_COLOR='0',
                       ANSIBLE_LOCAL_TEMP=os.path.join(home, 'tmp'), ANSIBLE_HOME=home, ANSIBLE_NOCOLOR='1', ANSIBLE_PYTHON_INTERPRETER='auto_silent')
            r = subprocess.run(['ansible', 'localhost', '-i', 'localhost,', '-c', 'local', '-m', 'vfioctl.vfio.vfio_bindings', '-a', json.dumps(args)] + list(flags),
                               env=env, capture_output=True, text=True, timeout=120)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        head, sep, body = r.stdout.partition('localhost | ')
        try:
            status, text = body.split(' => ', 1)
            res = json.loads(text)
        except (IndexError, ValueError):
            self.fail('ansible printed no result: %s %s' % (r.stdout, r.stderr))
        res['_printed_diff'] = head
        res['_status'] = status  # SUCCESS, CHANGED or FAILED! (the callback drops `failed`)
        return res

    def test_check_and_diff_mode(self):
        res = self.run_module({'devices': [{'match': 'eth0', 'driver': 'vfio-pci'}], 'root': ROOT, 'executable': BIN, 'persist': True}, '--check', '--diff')
        self.assertEqual(res['_status'], 'CHANGED', res)
        self.assertTrue(res['changed'], res)
        self.assertEqual([(a['bdf'], a['from'], a['to'], a['status']) for a in res['actions']], [('0000:03:00.0', 'e1000e', 'vfio-pci', 'planned')])
        self.assertIn('--- before: drivers', res['_printed_diff'])
        self.assertIn('\n-0000:03:00.0: e1000e\n+0000:03:00.0: vfio-pci\n', res['_printed_diff'])
        self.assertTrue(res['persist']['dryRun'])
        self.assertTrue(res['rebuild_initramfs'], 'persist would install the initramfs hook')
        self.assertFalse(os.path.exists(os.path.join(ROOT, 'etc', 'vfioctl')), 'check mode writes nothing')

    def test_absent_on_a_device_the_host_has_changes_nothing(self):
        res = self.run_module({'devices': [{'match': 'eth0', 'driver': 'vfio-pci'}], 'state': 'absent', 'root': ROOT, 'executable': BIN, 'persist': True}, '--check', '--diff')
        self.assertEqual(res['_status'], 'SUCCESS', res)
        self.assertFalse(res['changed'], res)
        self.assertEqual([(a['bdf'], a['status']) for a in res['actions']], [('0000:03:00.0', 'unchanged')])
        self.assertTrue(res['persist']['remove'], 'absent with persist removes the boot files')
        self.assertFalse(res['rebuild_initramfs'], 'none installed, nothing to rebuild')

    def test_vfioctl_error_is_the_message(self):
        res = self.run_module({'devices': [{'match': '0000:09:00.0', 'driver': 'vfio-pci'}], 'root': ROOT, 'executable': BIN}, '--check')
        self.assertEqual(res['_status'], 'FAILED!', res)
        self.assertEqual(res['msg'], 'device 0000:09:00.0: no such PCI device')
        self.assertEqual(res['error']['code'], 'no-such-device')
        self.assertEqual(res['error']['exit'], 3)
        self.assertEqual(res['rc'], 3)

    def test_entries_vfioctl_rejects_fail_with_its_message(self):
        res = self.run_module({'devices': [{'match': 'eth0', 'driver': 'vfio-pci'}, {'match': '0000:03:00.0', 'driver': 'host'}], 'root': ROOT, 'executable': BIN}, '--check')
        self.assertEqual(res['_status'], 'FAILED!', res)
        self.assertEqual(res['msg'], '<stdin>:3: devices[].match "0000:03:00.0" gives 0000:03:00.0 driver "host", but line 2 ("eth0") gives it "vfio-pci"')
        self.assertEqual((res['error']['code'], res['error']['exit']), ('usage', 2))
        res = self.run_module({'devices': [{'match': 'eth0', 'driver': 'no_such_variant'}], 'root': ROOT, 'executable': BIN}, '--check')
        self.assertEqual(res['_status'], 'FAILED!', res)
        self.assertRegex(res['msg'], r'^driver "no_such_variant": no such driver or module')
        self.assertEqual(res['error']['code'], 'no-such-driver')

    def test_bad_entry_fails_before_vfioctl(self):
        res = self.run_module({'devices': [{'match': 'eth0', 'driver': 'vfio-pci; reboot'}], 'root': ROOT, 'executable': '/nonexistent/vfioctl'}, '--check')
        self.assertEqual(res['_status'], 'FAILED!', res)
        self.assertRegex(res['msg'], r'^devices\[0\]\.driver: "vfio-pci; reboot" may hold only')


if __name__ == '__main__':
    unittest.main()

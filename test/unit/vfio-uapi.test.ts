/**
 * src/vfio/uapi.ts against the kernel's own headers: a C program, generated from the
 * module's tables and compiled with gcc against <linux/vfio.h> (and <linux/iommufd.h> where
 * present), prints every number the module writes down, and each must match. The system's
 * headers (linux-libc-dev) are used unless VFIOCTL_UAPI_DIR names a kernel tree's
 * include/uapi (e.g. a 6.12 source: its vfio.h and iommufd.h are used as they are).
 * Then decoders and encoders on buffers built by hand from the header layout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { FLAG, IOCTL, SIZE, decodeDeviceInfo, decodeHotResetInfo, decodeMigration, encodeAttachPt, encodeBindIommufd, encodeDestroy, encodeDeviceName, encodeFdArg, encodeFeature, encodeHotResetInfo, flagNames, io } from '../../src/vfio/uapi.js';

/** Field offsets the decoders rely on: [struct, field, offset]. */
const OFFSETS: [string, string, number][] = [
  ['vfio_group_status', 'flags', 4],
  ['vfio_device_info', 'flags', 4],
  ['vfio_device_info', 'num_regions', 8],
  ['vfio_device_info', 'num_irqs', 12],
  ['vfio_device_info', 'cap_offset', 16],
  ['vfio_info_cap_header', 'version', 2],
  ['vfio_info_cap_header', 'next', 4],
  ['vfio_device_feature', 'data', 8],
  ['vfio_pci_hot_reset_info', 'count', 8],
  ['vfio_pci_hot_reset_info', 'devices', 12],
  ['vfio_pci_dependent_device', 'segment', 4],
  ['vfio_pci_dependent_device', 'bus', 6],
  ['vfio_pci_dependent_device', 'devfn', 7],
  ['vfio_device_bind_iommufd', 'iommufd', 8],
  ['vfio_device_bind_iommufd', 'out_devid', 12],
  ['vfio_device_attach_iommufd_pt', 'pt_id', 8],
  ['iommu_ioas_alloc', 'out_ioas_id', 8],
  ['iommu_destroy', 'id', 4],
];

/** The macro whose presence says a struct exists in these headers (older headers lack the cdev and iommufd ones). */
const STRUCT_GUARD: Record<string, string> = {
  vfio_device_bind_iommufd: 'VFIO_DEVICE_BIND_IOMMUFD',
  vfio_device_attach_iommufd_pt: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT',
  iommu_ioas_alloc: 'IOMMU_IOAS_ALLOC',
  iommu_destroy: 'IOMMU_DESTROY',
};

/** struct vfio_device_info gained `pad` after 6.1: 20 bytes there, 24 since; the module sends 24 (the kernel reads minsz). */
const OLDER_SIZES: Record<string, number[]> = { vfio_device_info: [20] };

function cProgram(): string {
  const lines = ['#include <stdio.h>', '#include <stddef.h>', '#include <linux/vfio.h>', '#if __has_include(<linux/iommufd.h>)', '#include <linux/iommufd.h>', '#endif', 'int main(void) {'];
  const guarded = (macro: string | undefined, body: string) => (macro ? `#ifdef ${macro}\n${body}\n#endif` : body);
  for (const name of Object.keys(IOCTL)) lines.push(guarded(name, `printf("ioctl %s %lu\\n", "${name}", (unsigned long)(${name}));`));
  for (const name of Object.keys(FLAG)) lines.push(guarded(name, `printf("flag %s %lu\\n", "${name}", (unsigned long)(__u32)(${name}));`));
  for (const name of Object.keys(SIZE)) lines.push(guarded(STRUCT_GUARD[name], `printf("size %s %zu\\n", "${name}", sizeof(struct ${name}));`));
  for (const [s, f] of OFFSETS) lines.push(guarded(STRUCT_GUARD[s], `printf("offset ${s}.${f} %zu\\n", offsetof(struct ${s}, ${f}));`));
  lines.push('printf("const VFIO_API_VERSION %d\\n", VFIO_API_VERSION);', 'printf("const VFIO_TYPE1v2_IOMMU %d\\n", VFIO_TYPE1v2_IOMMU);', 'return 0; }');
  return lines.join('\n') + '\n';
}

function haveGcc(): boolean {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('ioctl numbers, flags, sizes and offsets match the kernel headers (gcc)', (t) => {
  const uapi = process.env.VFIOCTL_UAPI_DIR;
  if (!haveGcc()) return t.skip('no gcc');
  if (!uapi && !fs.existsSync('/usr/include/linux/vfio.h')) return t.skip('no <linux/vfio.h> (install linux-libc-dev, or set VFIOCTL_UAPI_DIR)');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vfioctl-uapi-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const args = ['-O0', '-Wall', '-o', path.join(dir, 'uapi'), path.join(dir, 'uapi.c')];
  if (uapi) {
    // Only these two headers from the tree: linux/types.h and asm/ come from the system (as headers_install would give them).
    fs.mkdirSync(path.join(dir, 'include/linux'), { recursive: true });
    for (const h of ['vfio.h', 'iommufd.h']) if (fs.existsSync(path.join(uapi, 'linux', h))) fs.copyFileSync(path.join(uapi, 'linux', h), path.join(dir, 'include/linux', h));
    args.unshift('-D__user=', '-I', path.join(dir, 'include'));
  }
  fs.writeFileSync(path.join(dir, 'uapi.c'), cProgram());
  execFileSync('gcc', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const out = execFileSync(path.join(dir, 'uapi'), { encoding: 'utf8' }).trim().split('\n');
  const checked = new Set<string>();
  for (const line of out) {
    const [kind, name, value] = line.split(' ') as [string, string, string];
    const v = Number(value);
    checked.add(`${kind} ${name}`);
    if (kind === 'ioctl') assert.equal(IOCTL[name as keyof typeof IOCTL], v, `${name}: module 0x${IOCTL[name as keyof typeof IOCTL].toString(16)}, header 0x${v.toString(16)}`);
    else if (kind === 'flag') assert.equal(FLAG[name as keyof typeof FLAG], v, name);
    else if (kind === 'size') {
      const mine = SIZE[name as keyof typeof SIZE];
      assert.ok(mine === v || (OLDER_SIZES[name] ?? []).includes(v), `sizeof(struct ${name}): module ${mine}, header ${v}`);
    } else if (kind === 'offset') {
      const [, s, f] = /^(\w+)\.(\w+)$/.exec(name)!;
      assert.equal(OFFSETS.find(([a, b]) => a === s && b === f)![2], v, `offsetof(${name})`);
    } else if (name === 'VFIO_API_VERSION') assert.equal(v, 0);
    else if (name === 'VFIO_TYPE1v2_IOMMU') assert.equal(v, 3);
  }
  // Every header has at least the group/container API, the device API and the feature ioctl (6.0+).
  for (const name of ['VFIO_GET_API_VERSION', 'VFIO_GROUP_GET_DEVICE_FD', 'VFIO_DEVICE_GET_INFO', 'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO', 'VFIO_DEVICE_FEATURE']) {
    assert.ok(checked.has(`ioctl ${name}`), `${name} was checked`);
  }
  for (const name of ['VFIO_DEVICE_FEATURE_MIGRATION', 'VFIO_DEVICE_FEATURE_DMA_LOGGING_START', 'VFIO_MIGRATION_STOP_COPY']) assert.ok(checked.has(`flag ${name}`), `${name} was checked`);
  const total = Object.keys(IOCTL).length + Object.keys(FLAG).length + Object.keys(SIZE).length + OFFSETS.length;
  t.diagnostic(`${checked.size - 2} of ${total} numbers checked against ${uapi ?? '/usr/include'} (the rest are newer than these headers)`);
  if (uapi) assert.equal(checked.size - 2, total, 'a full kernel uapi tree defines every number the module uses');
});

test('_IO: the direction bits of _IOC_NONE differ on powerpc and mips', () => {
  assert.equal(io(0x3b, 100, 'x64'), 0x3b64);
  assert.equal(io(0x3b, 100, 'arm64'), 0x3b64);
  assert.equal(io(0x3b, 112, 'ppc64'), 0x20003b70);
  assert.equal(io(0x3b, 0x81, 'mips'), 0x20003b81);
});

test('decodeDeviceInfo: flags, counts and a capability chain walked by next offsets', () => {
  // argsz 48, flags RESET|PCI|CAPS, 9 regions, 5 irqs, cap_offset 32; caps at 32 (id 5 v1, next 40) and 40 (id 99 v2, next 0).
  const b = Buffer.alloc(48);
  b.writeUInt32LE(48, 0);
  b.writeUInt32LE(0b10000011, 4);
  b.writeUInt32LE(9, 8);
  b.writeUInt32LE(5, 12);
  b.writeUInt32LE(32, 16);
  b.writeUInt16LE(5, 32); b.writeUInt16LE(1, 34); b.writeUInt32LE(40, 36);
  b.writeUInt16LE(99, 40); b.writeUInt16LE(2, 42); b.writeUInt32LE(0, 44);
  const info = decodeDeviceInfo(b);
  assert.deepEqual(info.flagNames, ['RESET', 'PCI', 'CAPS']);
  assert.equal(info.regions, 9);
  assert.equal(info.irqs, 5);
  assert.deepEqual(info.caps, [{ id: 5, version: 1, name: 'PCI_ATOMIC_COMP' }, { id: 99, version: 2, name: null }]);
  // A chain that points back to itself, or outside the buffer, ends the walk.
  b.writeUInt32LE(32, 44);
  assert.equal(decodeDeviceInfo(b).caps.length, 2);
  b.writeUInt32LE(4096, 36);
  assert.equal(decodeDeviceInfo(b).caps.length, 1);
  // The kernel asks for more room (argsz larger than the buffer): no chain read.
  b.writeUInt32LE(96, 0);
  assert.deepEqual(decodeDeviceInfo(b).caps, []);
  assert.equal(decodeDeviceInfo(b).argsz, 96);
  // A bit the module does not name is shown, not dropped.
  b.writeUInt32LE(1 << 12, 4);
  assert.deepEqual(decodeDeviceInfo(b).flagNames, ['0x1000']);
});

test('decodeMigration and decodeHotResetInfo read the payloads at the header offsets', () => {
  const m = Buffer.alloc(16);
  m.writeUInt32LE(16, 0);
  m.writeUInt32LE((1 << 16) | 1, 4);
  m.writeUInt32LE(0b101, 8);
  assert.deepEqual(decodeMigration(m).flagNames, ['STOP_COPY', 'PRE_COPY']);
  m.writeUInt32LE(0b1010, 8);
  m.writeUInt32LE(1, 12); // bit 32 of the __u64
  assert.deepEqual(decodeMigration(m).flagNames, ['P2P', '0x8', '0x100000000']);

  // count 2: 0000:05:00.0 group 13, 0001:ff:1f.7 devid 0xffffffff; flags DEV_ID.
  const h = Buffer.alloc(28);
  h.writeUInt32LE(28, 0);
  h.writeUInt32LE(1, 4);
  h.writeUInt32LE(2, 8);
  h.writeUInt32LE(13, 12); h.writeUInt16LE(0, 16); h.writeUInt8(5, 18); h.writeUInt8(0, 19);
  h.writeUInt32LE(0xffffffff, 20); h.writeUInt16LE(1, 24); h.writeUInt8(0xff, 26); h.writeUInt8((0x1f << 3) | 7, 27);
  const info = decodeHotResetInfo(h);
  assert.deepEqual(info.flagNames, ['DEV_ID']);
  assert.deepEqual(info.devices, [{ bdf: '0000:05:00.0', id: 13 }, { bdf: '0001:ff:1f.7', id: 0xffffffff }]);
  // An ENOSPC reply: the count needed, no room for the entries.
  const small = Buffer.alloc(12);
  small.writeUInt32LE(12, 0);
  small.writeUInt32LE(3, 8);
  assert.equal(decodeHotResetInfo(small).count, 3);
  assert.deepEqual(decodeHotResetInfo(small).devices, []);
});

test('encoders write argsz, flags and fields where the header puts them', () => {
  assert.deepEqual([...encodeFeature(FLAG.VFIO_DEVICE_FEATURE_PROBE | FLAG.VFIO_DEVICE_FEATURE_SET | 6)], [8, 0, 0, 0, 6, 0, 6, 0]);
  assert.equal(encodeFeature(0, 8).readUInt32LE(0), 16);
  assert.deepEqual([...encodeBindIommufd(5)], [16, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...encodeAttachPt(2)], [12, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
  assert.deepEqual([...encodeDestroy(9)], [8, 0, 0, 0, 9, 0, 0, 0]);
  assert.equal(encodeHotResetInfo(3).length, 36);
  assert.equal(encodeHotResetInfo(3).readUInt32LE(0), 36);
  assert.equal(encodeDeviceName('0000:05:00.0').toString('latin1'), '0000:05:00.0\0');
  assert.equal(encodeFdArg(7).readInt32LE(0), 7);
  assert.deepEqual(flagNames(0b11, ['A', 'B']), ['A', 'B']);
});

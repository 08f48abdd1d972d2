import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTree, tempRoot, type TreeSpec } from './tree.js';
import { cli } from './cli.js';
import { FakeKernel, type FakeKernelOptions } from './fake-kernel.js';
import { labSpec } from './lab-tree.js';

/** Lock waits would only slow a failing test down. */
export const FAKE_LAB_ENV = { NO_COLOR: '1', VFIOCTL_LOCK_TIMEOUT: '0' };

/**
 * A built tree behind the fake kernel, the CLI bound to it, and readers of what the kernel
 * state became: the harness of the bind, unbind and apply tests.
 */
export function fakeLab(t: { after: (f: () => void) => void }, spec: TreeSpec = labSpec(), opts: FakeKernelOptions = {}) {
  const { root, cleanup } = tempRoot();
  t.after(cleanup);
  buildTree(root, spec);
  const kernel = new FakeKernel(root, spec, opts);
  const run = (...argv: string[]) => cli(argv, root, { makeFs: () => kernel, env: FAKE_LAB_ENV });
  /** Driver, override and vfio-dev presence of one device, read straight from the tree. */
  const at = (bdf: string) => {
    const dir = fs.realpathSync(path.join(root, 'sys/bus/pci/devices', bdf));
    const driver = fs.existsSync(path.join(dir, 'driver')) ? path.basename(fs.readlinkSync(path.join(dir, 'driver'))) : null;
    const override = fs.readFileSync(path.join(dir, 'driver_override'), 'latin1').trim();
    return { driver, override, vfioDev: fs.existsSync(path.join(dir, 'vfio-dev')) };
  };
  /** The host-driver record vfioctl keeps under /run/vfioctl. */
  const record = (bdf: string) => {
    const p = path.join(root, 'run/vfioctl/devices', `${bdf}.json`);
    return fs.existsSync(p) ? JSON.parse(fs.readFileSync(p, 'utf8')) : undefined;
  };
  return { root, kernel, run, at, record };
}

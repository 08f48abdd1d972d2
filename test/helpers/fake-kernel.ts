import * as fs from 'node:fs';
import * as path from 'node:path';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { VfioctlError, errnoMeaning, exitCodeForErrno } from '../../src/errors.js';
import { KNOWN_VARIANTS } from '../../src/model/drivers.js';
import { addDriver, type TreeSpec } from './tree.js';

/**
 * An FsRoot whose writes act like the kernel's on a tree made by buildTree (kernel.md §3):
 * driver_override stores a name or `(null)`; drivers/D/bind and unbind with their ENODEV
 * and EBUSY rules; drivers_probe binds the overridden driver whatever its id table says
 * (§11 (d)), otherwise the first driver whose non-override-only table matches, and succeeds
 * even when nothing binds; vfio drivers never autoprobe, refuse bridges (EINVAL) and create
 * vfio-dev/vfioX and /dev/vfio/N. Failures can be injected per path.
 */
export interface FakeKernelOptions {
  /** driver → `vvvv:dddd` ids its static table matches (non-override-only). Each device's initial host driver matches it by default. */
  idTables?: Record<string, string[]>;
  /** Extra vfio-family drivers (override-only tables, vfio-dev on bind). */
  vfioDrivers?: string[];
  /** noiommu mode: vfio binds devices without a group. */
  noiommu?: boolean;
}

export class FakeKernelBlocked extends Error {}

export class FakeKernel extends FsRoot {
  /** Ordered log: `path <- value: OK|ERRNO|BLOCKED`. */
  readonly log: string[] = [];
  private readonly tables = new Map<string, Set<string>>();
  private readonly vfio = new Set<string>(['vfio-pci', ...KNOWN_VARIANTS]);
  private readonly rules: { path: RegExp; errno: string; times: number }[] = [];
  private readonly probeErrors = new Map<string, string>();
  private readonly open = new Set<string>();
  private nextVfioDev = 0;
  private readonly failAtIndex = new Map<number, string>();

  constructor(root: string, spec: TreeSpec, private readonly opts: FakeKernelOptions = {}) {
    super(root);
    for (const d of spec.devices) {
      if (d.driver && !d.vfioDev && d.driver !== 'vfio-pci' && !KNOWN_VARIANTS.has(d.driver)) this.table(d.driver).add(d.id);
      if (d.vfioDev) this.vfio.add(d.driver ?? 'vfio-pci');
      const m = /^vfio(\d+)$/.exec(d.vfioDev ?? '');
      if (m) this.nextVfioDev = Math.max(this.nextVfioDev, Number(m[1]) + 1);
    }
    for (const [drv, ids] of Object.entries(opts.idTables ?? {})) for (const id of ids) this.table(drv).add(id);
    for (const v of opts.vfioDrivers ?? []) this.vfio.add(v);
  }

  private table(driver: string): Set<string> {
    return this.tables.get(driver) ?? this.tables.set(driver, new Set()).get(driver)!;
  }

  /** The next write to a matching path fails with errno and changes nothing. */
  failNext(rule: { path: RegExp; errno: string; times?: number }): this {
    this.rules.push({ path: rule.path, errno: rule.errno, times: rule.times ?? 1 });
    return this;
  }

  /** The n-th write (0-based, counted from construction) fails with errno and changes nothing. */
  failWriteNumber(n: number, errno: string): this {
    this.failAtIndex.set(n, errno);
    return this;
  }

  /** The driver's probe fails: bind gives errno, drivers_probe leaves the device unbound. */
  probeFails(driver: string, errno = 'EINVAL'): this {
    this.probeErrors.set(driver, errno);
    return this;
  }

  /** A VFIO user holds the device fd: enable reads 1 and unbind would block uninterruptibly. */
  openDevice(bdf: string): this {
    this.open.add(bdf);
    fs.writeFileSync(path.join(this.dir(bdf), 'enable'), '1\n');
    return this;
  }

  /** What modprobe does: the module registers its driver. */
  loadModule(module: string, driver = module): void {
    addDriver(this.root, driver, module);
  }

  // --- tree access (host paths) ---
  private dir(bdf: string): string {
    return fs.realpathSync(this.abs(`/sys/bus/pci/devices/${bdf}`));
  }
  private hasDevice(bdf: string): boolean {
    return fs.existsSync(this.abs(`/sys/bus/pci/devices/${bdf}`));
  }
  private driverOf(bdf: string): string | null {
    try {
      return path.basename(fs.readlinkSync(path.join(this.dir(bdf), 'driver')));
    } catch {
      return null;
    }
  }
  private overrideOf(bdf: string): string | null {
    const v = fs.readFileSync(path.join(this.dir(bdf), 'driver_override'), 'latin1').replace(/\n$/, '');
    return v === '(null)' ? null : v;
  }
  private groupOf(bdf: string): string | null {
    try {
      return path.basename(fs.readlinkSync(path.join(this.dir(bdf), 'iommu_group')));
    } catch {
      return null;
    }
  }
  private idOf(bdf: string): string {
    const r = (f: string) => fs.readFileSync(path.join(this.dir(bdf), f), 'latin1').trim().replace(/^0x/, '');
    return `${r('vendor')}:${r('device')}`;
  }
  private isBridge(bdf: string): boolean {
    return /^0x060[479]/.test(fs.readFileSync(path.join(this.dir(bdf), 'class'), 'latin1'));
  }
  private registered(driver: string): boolean {
    return fs.existsSync(this.abs(`/sys/bus/pci/drivers/${driver}`));
  }
  private groupMembers(group: string): string[] {
    return fs.readdirSync(this.abs(`/sys/kernel/iommu_groups/${group}/devices`));
  }
  isVfio(driver: string): boolean {
    return this.vfio.has(driver);
  }

  /** pci_match_device(): the override decides alone when set (§3.2). */
  private matches(driver: string, bdf: string): boolean {
    const override = this.overrideOf(bdf);
    if (override !== null) return override === driver;
    if (this.vfio.has(driver)) return false; // override-only tables never autoprobe
    return this.tables.get(driver)?.has(this.idOf(bdf)) ?? false;
  }

  /** really_probe() for one driver; returns an errno or null on success. */
  private tryBind(bdf: string, driver: string): string | null {
    if (!this.matches(driver, bdf)) return 'ENODEV';
    if (this.driverOf(bdf) !== null) return 'EBUSY';
    const group = this.groupOf(bdf);
    const vfio = this.vfio.has(driver);
    if (!vfio && group !== null && this.groupMembers(group).some((m) => this.open.has(m))) return 'EBUSY'; // dma_configure: VFIO owns the group
    if (vfio && this.isBridge(bdf)) return 'EINVAL';
    if (vfio && group === null && !this.opts.noiommu) return 'EINVAL';
    const err = this.probeErrors.get(driver);
    if (err) return err;
    const dir = this.dir(bdf);
    const drvDir = this.abs(`/sys/bus/pci/drivers/${driver}`);
    fs.symlinkSync(path.relative(dir, drvDir), path.join(dir, 'driver'));
    fs.symlinkSync(path.relative(drvDir, dir), path.join(drvDir, bdf));
    if (vfio) {
      fs.mkdirSync(path.join(dir, 'vfio-dev', `vfio${this.nextVfioDev++}`), { recursive: true });
      fs.writeFileSync(path.join(dir, 'enable'), '0\n');
      if (group !== null) {
        fs.mkdirSync(this.abs('/dev/vfio'), { recursive: true });
        if (!fs.existsSync(this.abs(`/dev/vfio/${group}`))) fs.writeFileSync(this.abs(`/dev/vfio/${group}`), '');
      }
    } else {
      fs.writeFileSync(path.join(dir, 'enable'), '1\n');
    }
    return null;
  }

  private doUnbind(bdf: string, driver: string): string | null {
    if (!this.hasDevice(bdf) || this.driverOf(bdf) !== driver) return 'ENODEV';
    if (this.open.has(bdf)) return 'BLOCKED';
    const dir = this.dir(bdf);
    fs.rmSync(path.join(dir, 'driver'));
    fs.rmSync(this.abs(`/sys/bus/pci/drivers/${driver}/${bdf}`), { force: true });
    fs.writeFileSync(path.join(dir, 'enable'), '0\n');
    if (fs.existsSync(path.join(dir, 'vfio-dev'))) {
      fs.rmSync(path.join(dir, 'vfio-dev'), { recursive: true, force: true });
      const group = this.groupOf(bdf);
      if (group !== null && !this.groupMembers(group).some((m) => fs.existsSync(path.join(this.dir(m), 'vfio-dev')))) {
        fs.rmSync(this.abs(`/dev/vfio/${group}`), { force: true });
      }
    }
    return null;
  }

  private probe(bdf: string): string | null {
    if (!this.hasDevice(bdf)) return 'ENODEV';
    if (this.driverOf(bdf) !== null) return null;
    const override = this.overrideOf(bdf);
    const candidates = override !== null ? [override] : fs.readdirSync(this.abs('/sys/bus/pci/drivers')).sort();
    for (const drv of candidates) {
      if (!this.registered(drv)) continue;
      const err = this.tryBind(bdf, drv);
      if (err === null) return null;
      // Probe failures are swallowed; only dma_configure's refusal surfaces, as EINVAL.
      if (err === 'EBUSY' && this.matches(drv, bdf)) return 'EINVAL';
    }
    return null;
  }

  private fail(p: string, value: string, errno: string): never {
    const err = Object.assign(new Error(errno), { code: errno });
    throw new VfioctlError(exitCodeForErrno(errno), `cannot write "${value.trim()}" to ${p}`, errnoMeaning(errno), undefined, { cause: err });
  }

  override write(p: string, value: string): void {
    this.writes.push({ path: p, value });
    this.onWrite?.(p, value); // as FsRoot.write does, so --verbose shows the fake's writes too
    const entry = `${p} <- ${JSON.stringify(value)}`;
    const atIndex = this.failAtIndex.get(this.writes.length - 1);
    if (atIndex) {
      this.log.push(`${entry}: ${atIndex} (injected)`);
      this.fail(p, value, atIndex);
    }
    const rule = this.rules.find((r) => r.times > 0 && r.path.test(p));
    if (rule) {
      rule.times--;
      this.log.push(`${entry}: ${rule.errno} (injected)`);
      this.fail(p, value, rule.errno);
    }
    const bdf = value.split('\n')[0]!.trim();
    let err: string | null = null;
    let m: RegExpExecArray | null;
    if ((m = /^\/sys\/bus\/pci\/devices\/([^/]+)\/driver_override$/.exec(p))) {
      const name = value.split('\n')[0]!;
      if (value.length >= 4095) err = 'EINVAL';
      else fs.writeFileSync(path.join(this.dir(m[1]!), 'driver_override'), name === '' || name.startsWith('\0') ? '(null)\n' : `${name}\n`);
    } else if ((m = /^\/sys\/bus\/pci\/drivers\/([^/]+)\/bind$/.exec(p))) {
      err = !this.hasDevice(bdf) ? 'ENODEV' : this.tryBind(bdf, m[1]!);
    } else if ((m = /^\/sys\/bus\/pci\/drivers\/([^/]+)\/unbind$/.exec(p))) {
      err = this.doUnbind(bdf, m[1]!);
      if (err === 'BLOCKED') {
        this.log.push(`${entry}: BLOCKED`);
        throw new FakeKernelBlocked(`unbind of ${bdf} would block uninterruptibly: a VFIO user has it open`);
      }
    } else if (p === '/sys/bus/pci/drivers_probe') {
      err = this.probe(bdf);
    } else {
      this.log.push(`${entry}: OK (plain file)`);
      this.writes.pop(); // super.write logs it again
      return super.write(p, value);
    }
    this.log.push(`${entry}: ${err ?? 'OK'}`);
    if (err) this.fail(p, value, err);
  }
}

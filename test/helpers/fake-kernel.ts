import * as fs from 'node:fs';
import * as path from 'node:path';
import { FsRoot } from '../../src/sysfs/fsroot.js';
import { VfioctlError, errnoMeaning, exitCodeForErrno } from '../../src/errors.js';
import { KNOWN_VARIANTS } from '../../src/model/drivers.js';
import { addDevices, addDriver, type DevSpec, type TreeSpec } from './tree.js';

/**
 * An FsRoot whose writes act like the kernel's on a tree made by buildTree (kernel.md §3):
 * driver_override stores a name or `(null)`; drivers/D/bind and unbind with their ENODEV
 * and EBUSY rules; drivers_probe binds the overridden driver whatever its id table says
 * (§11 (d)), otherwise the first driver whose non-override-only table matches, and succeeds
 * even when nothing binds; vfio drivers never autoprobe, refuse bridges (EINVAL) and create
 * vfio-dev/vfioX and /dev/vfio/N. SR-IOV (§9): sriov_numvfs with its ERANGE/ENOENT/EBUSY
 * rules creates VFs (each in a new group) that probe only while the PF's
 * sriov_drivers_autoprobe is 1 or they have an override; vfio drivers refuse a PF with VFs
 * (EBUSY). A late module load binds every unbound device whose override names its driver
 * (§3.4). Failures can be injected per path.
 */
export interface FakeKernelOptions {
  /** driver → `vvvv:dddd` ids its static table matches (non-override-only). Each device's initial host driver matches it by default. */
  idTables?: Record<string, string[]>;
  /** Extra vfio-family drivers (override-only tables, vfio-dev on bind). */
  vfioDrivers?: string[];
  /** noiommu mode: vfio binds devices without a group. */
  noiommu?: boolean;
  /** vfio_pci.enable_sriov=1: a vfio-pci PF may create VFs. */
  vfioSriov?: boolean;
  /** Device id of created VFs (`vvvv:dddd`); default the PF's. */
  vfId?: string;
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

  private readonly spec: TreeSpec;

  constructor(root: string, spec: TreeSpec, private readonly opts: FakeKernelOptions = {}) {
    super(root);
    this.spec = { ...spec, devices: [...spec.devices] };
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

  /** Every mutating file-system call, in order (sysfs writes, file writes, removals, links, chown, chmod). */
  readonly ops: string[] = [];
  private readonly failOps = new Map<number, string>();

  /**
   * The n-th mutating call (0-based, any kind) fails with errno and changes nothing, or with
   * 'THROW' throws a TypeError as a bug would.
   */
  failOp(n: number, errno: string): this {
    this.failOps.set(n, errno);
    return this;
  }

  /** Count one mutating call; fail it if asked to. Returns the errno to fail a sysfs write with. */
  private countOp(desc: string): string | undefined {
    const i = this.ops.length;
    this.ops.push(desc);
    const e = this.failOps.get(i);
    if (e === 'THROW') throw new TypeError(`injected bug at call ${i} (${desc})`);
    return e;
  }

  private fileOpFails(desc: string): void {
    const e = this.countOp(desc);
    if (e) throw Object.assign(new Error(`${e}: injected at ${desc}`), { code: e });
  }

  override writeFileAtomic(p: string, content: string, mode?: number): void {
    this.fileOpFails(`writeFile ${p}`);
    super.writeFileAtomic(p, content, mode);
  }

  override removeFile(p: string): void {
    this.fileOpFails(`remove ${p}`);
    super.removeFile(p);
  }

  override symlink(target: string, p: string): void {
    this.fileOpFails(`symlink ${p}`);
    super.symlink(target, p);
  }

  override chown(p: string, uid: number, gid: number): void {
    this.fileOpFails(`chown ${p}`);
    super.chown(p, uid, gid);
  }

  override chmod(p: string, mode: number): void {
    this.fileOpFails(`chmod ${p}`);
    super.chmod(p, mode);
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

  /** The VFIO user closes the device again. */
  closeDevice(bdf: string): this {
    this.open.delete(bdf);
    fs.writeFileSync(path.join(this.dir(bdf), 'enable'), '0\n');
    return this;
  }

  /** What modprobe does: the module registers its driver. */
  loadModule(module: string, driver = module): void {
    addDriver(this.root, driver, module);
    for (const bdf of fs.readdirSync(this.abs('/sys/bus/pci/devices')).sort()) {
      if (this.driverOf(bdf) === null && this.overrideOf(bdf) === driver) this.tryBind(bdf, driver);
    }
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

  private numVfs(bdf: string): number {
    try {
      return Number(fs.readFileSync(path.join(this.dir(bdf), 'sriov_numvfs'), 'latin1').trim()) || 0;
    } catch {
      return 0;
    }
  }

  /** pci_device_can_probe(): a VF probes only while its PF autoprobes, or with an override. */
  private canProbe(bdf: string): boolean {
    let pf: string;
    try {
      pf = fs.realpathSync(path.join(this.dir(bdf), 'physfn'));
    } catch {
      return true;
    }
    return this.overrideOf(bdf) !== null || fs.readFileSync(path.join(pf, 'sriov_drivers_autoprobe'), 'latin1').trim() === '1';
  }

  /** sriov_numvfs_store(): returns an errno or null. */
  private setNumVfs(pf: string, value: string): string | null {
    const dir = this.dir(pf);
    if (!/^\d+$/.test(value.trim())) return 'EINVAL';
    const n = Number(value.trim());
    const total = Number(fs.readFileSync(path.join(dir, 'sriov_totalvfs'), 'latin1').trim());
    const cur = this.numVfs(pf);
    if (n > total) return 'ERANGE';
    const drv = this.driverOf(pf);
    if (drv === null || (this.vfio.has(drv) && !this.opts.vfioSriov)) return 'ENOENT';
    if (n === cur) return null;
    if (n !== 0 && cur !== 0) return 'EBUSY';
    if (n === 0) {
      for (const vf of this.spec.devices.filter((d) => d.physfn === pf)) {
        if (this.open.has(vf.bdf)) return 'BLOCKED';
      }
      for (const vf of this.spec.devices.filter((d) => d.physfn === pf)) this.removeVf(vf);
      this.spec.devices = this.spec.devices.filter((d) => d.physfn !== pf);
      fs.writeFileSync(path.join(dir, 'sriov_numvfs'), '0\n');
      return null;
    }
    const pfSpec = this.spec.devices.find((d) => d.bdf === pf)!;
    const groups = fs.readdirSync(this.abs('/sys/kernel/iommu_groups')).map(Number).filter(Number.isInteger);
    let nextGroup = Math.max(0, ...groups) + 1;
    const [bus, devfn] = [parseInt(pf.slice(5, 7), 16), parseInt(pf.slice(8, 10), 16) * 8 + Number(pf.slice(11))];
    const vfId = this.opts.vfId ?? pfSpec.id;
    const vfs: DevSpec[] = Array.from({ length: n }, (_, i) => {
      const rid = bus * 256 + devfn + 1 + i;
      const vbus = (rid >> 8).toString(16).padStart(2, '0');
      const vdev = ((rid & 0xff) >> 3).toString(16).padStart(2, '0');
      return { bdf: `${pf.slice(0, 5)}${vbus}:${vdev}.${rid & 7}`, parent: pfSpec.parent ?? null, id: vfId, class: pfSpec.class, physfn: pf, group: nextGroup++ };
    });
    this.spec.devices.push(...vfs);
    addDevices(this.root, this.spec, vfs);
    fs.writeFileSync(path.join(dir, 'sriov_numvfs'), `${n}\n`);
    // New VFs probe their host driver when autoprobe allows (pci_device_can_probe()).
    for (const vf of vfs) this.probe(vf.bdf);
    return null;
  }

  private removeVf(vf: DevSpec): void {
    const dir = this.dir(vf.bdf);
    const drv = this.driverOf(vf.bdf);
    if (drv) fs.rmSync(this.abs(`/sys/bus/pci/drivers/${drv}/${vf.bdf}`), { force: true });
    const group = this.groupOf(vf.bdf);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(this.abs(`/sys/bus/pci/devices/${vf.bdf}`), { force: true });
    const pfDir = this.dir(vf.physfn!);
    for (const l of fs.readdirSync(pfDir).filter((x) => /^virtfn\d+$/.test(x))) {
      if (path.basename(fs.readlinkSync(path.join(pfDir, l))) === vf.bdf) fs.rmSync(path.join(pfDir, l));
    }
    if (group !== null) {
      fs.rmSync(this.abs(`/sys/kernel/iommu_groups/${group}`), { recursive: true, force: true });
      fs.rmSync(this.abs(`/dev/vfio/${group}`), { force: true });
    }
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
    if (!this.canProbe(bdf)) return 'ENODEV';
    if (vfio && this.isBridge(bdf)) return 'EINVAL';
    if (vfio && this.numVfs(bdf) > 0) return 'EBUSY'; // vfio-pci refuses a PF with VFs
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
    const injected = this.countOp(`write ${p}`);
    if (injected) {
      this.log.push(`${entry}: ${injected} (injected)`);
      this.fail(p, value, injected);
    }
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
    } else if ((m = /^\/sys\/bus\/pci\/devices\/([^/]+)\/sriov_drivers_autoprobe$/.exec(p))) {
      // kstrtobool: 0/1 (and y/n); shown back as 0 or 1 with a newline.
      const v = value.trim();
      if (/^[1yY]/.test(v) || /^[0nN]/.test(v)) fs.writeFileSync(path.join(this.dir(m[1]!), 'sriov_drivers_autoprobe'), /^[1yY]/.test(v) ? '1\n' : '0\n');
      else err = 'EINVAL';
    } else if ((m = /^\/sys\/bus\/pci\/devices\/([^/]+)\/sriov_numvfs$/.exec(p))) {
      err = this.setNumVfs(m[1]!, value);
      if (err === 'BLOCKED') {
        this.log.push(`${entry}: BLOCKED`);
        throw new FakeKernelBlocked(`sriov_numvfs 0 on ${m[1]} would block: a VFIO user has a VF open`);
      }
    } else {
      this.log.push(`${entry}: OK (plain file)`);
      this.writes.pop(); // super.write logs it again
      return super.write(p, value);
    }
    this.log.push(`${entry}: ${err ?? 'OK'}`);
    if (err) this.fail(p, value, err);
  }
}

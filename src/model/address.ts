/** PCI addresses in canonical sysfs form: `dddd:bb:dd.f`, lower-case hex. */
export type Bdf = string;

// Domains can be wider than 4 digits (Intel VMD uses 10000 and up).
const FULL = /^([0-9a-f]{4,8}):([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/;
const SHORT = /^([0-9a-f]{2}):([0-9a-f]{2})\.([0-7])$/;

export interface BdfParts {
  domain: number;
  bus: number;
  device: number;
  fn: number;
}

/** Parse a full or short (`01:00.0` = domain 0000) address; undefined when it is not one. */
export function parseBdf(text: string): Bdf | undefined {
  const t = text.trim().toLowerCase();
  const full = FULL.exec(t);
  const m = full ? full.slice(1) : SHORT.exec(t)?.slice(1);
  if (!m) return undefined;
  const [domain, bus, dev, fn] = full ? m : ['0000', ...m];
  if (parseInt(dev!, 16) > 0x1f) return undefined;
  return `${domain!.padStart(4, '0')}:${bus}:${dev}.${fn}`;
}

export function isBdf(text: string): boolean {
  return FULL.test(text);
}

export function bdfParts(bdf: Bdf): BdfParts {
  const m = FULL.exec(bdf);
  if (!m) throw new Error(`not a canonical PCI address: ${bdf}`);
  return { domain: parseInt(m[1]!, 16), bus: parseInt(m[2]!, 16), device: parseInt(m[3]!, 16), fn: parseInt(m[4]!, 16) };
}

/** `dddd:bb`, the bus a function sits on. */
export function busOf(bdf: Bdf): string {
  return bdf.slice(0, bdf.length - 5);
}

/** `dddd:bb:dd`, the slot (device) a function belongs to. */
export function slotOf(bdf: Bdf): string {
  return bdf.slice(0, bdf.length - 2);
}

export function devfnOf(bdf: Bdf): number {
  const p = bdfParts(bdf);
  return (p.device << 3) | p.fn;
}

/** Sort order used everywhere: domain, bus, device, function. Canonical strings sort right
 * as long as domains have the same width, so compare parts to be safe with wide domains. */
export function compareBdf(a: Bdf, b: Bdf): number {
  if (a.length === b.length) return a < b ? -1 : a > b ? 1 : 0;
  const pa = bdfParts(a);
  const pb = bdfParts(b);
  return pa.domain - pb.domain || pa.bus - pb.bus || pa.device - pb.device || pa.fn - pb.fn;
}

import type { ChalkInstance } from 'chalk';
import type { Host, IommuGroup } from '../../model/types.js';
import type { PciNames } from '../../sysfs/pciids.js';
import { deviceOf, groupBlockers, isVfioBound } from '../../model/host.js';
import { explainGroup } from '../../model/group-reason.js';
import { deviceJson, describeClass, describeDevice } from './device-json.js';
import { columns, stripAnsi } from './table.js';

export interface GroupView {
  group: IommuGroup;
  viable: boolean;
  blockers: string[];
  reason: ReturnType<typeof explainGroup>;
}

export function viewGroup(host: Host, group: IommuGroup): GroupView {
  const blockers = groupBlockers(host, group);
  return { group, viable: blockers.length === 0, blockers, reason: explainGroup(host, group) };
}

export function groupJson(host: Host, v: GroupView, names: PciNames) {
  return {
    id: v.group.id,
    viable: v.viable,
    blockers: v.blockers,
    reason: v.reason.text,
    reasonCode: v.reason.code,
    // The same members with a stable code for why each blocks (a driver that does not keep the group viable).
    blockedBy: v.blockers.map((b) => ({ bdf: b, code: 'host-driver', driver: deviceOf(host, b).driver })),
    devices: v.group.devices.map((b) => deviceJson(deviceOf(host, b), names)),
  };
}

function driverCell(host: Host, bdf: string, blocking: boolean, shared: boolean, c: ChalkInstance): string {
  const d = deviceOf(host, bdf);
  let text = d.driver ?? '-';
  if (isVfioBound(d)) text = c.green(text);
  else if (blocking) text = c.red(text);
  if (d.driverOverride !== null) text += ` (override ${d.driverOverride})`;
  if (blocking && shared) text += ' (blocks the group)';
  return text;
}

interface GroupRows {
  header: string[];
  /** Per group: its device rows, and the sentence explaining a shared group. */
  groups: { rows: string[][]; why: string | null }[];
}

/** The cells of the groups table, shared by the piped and the boxed form. */
function groupRows(host: Host, views: readonly GroupView[], names: PciNames, c: ChalkInstance): GroupRows {
  return {
    header: ['GROUP', 'VIABLE', 'DEVICE', 'ID / NAME', 'CLASS', 'DRIVER'].map((h) => c.bold(h)),
    groups: views.map((v) => ({
      rows: v.group.devices.map((bdf, i) => {
        const d = deviceOf(host, bdf);
        return [
          i === 0 ? String(v.group.id) : '',
          i === 0 ? (v.viable ? c.green('yes') : c.red('no')) : '',
          bdf,
          describeDevice(d, names),
          describeClass(d, names) + (d.bridge ? ' (bridge)' : ''),
          driverCell(host, bdf, v.blockers.includes(bdf), v.group.devices.length > 1, c),
        ];
      }),
      // Only shared groups need explaining; a lone device's blocker is its driver cell.
      why: v.group.devices.length > 1 ? `why shared: ${v.reason.text}` : null,
    })),
  };
}

/** Piped form: aligned columns, one row per device, group id and viability on its first row. */
export function renderGroups(host: Host, views: readonly GroupView[], names: PciNames, c: ChalkInstance): string {
  const t = groupRows(host, views, names, c);
  const rows = [t.header, ...t.groups.flatMap((g) => g.rows)];
  const reasonAfterRow = new Map<number, string>();
  let row = 0;
  for (const g of t.groups) {
    row += g.rows.length;
    if (g.why) reasonAfterRow.set(row, c.dim(`        ${g.why}`));
  }
  const lines = columns(rows, 2, (s) => stripAnsi(s).length).split('\n');
  return lines.map((line, i) => (reasonAfterRow.has(i) ? `${line}\n${reasonAfterRow.get(i)}` : line)).join('\n');
}

/** Table layout on a terminal: the width to fit, and whether names may be shortened. */
export interface TtyLayout {
  /** Terminal width in columns. */
  width: number;
  /** --wide: never shorten (rows may wrap). */
  wide: boolean;
}

const GAP = 2;
/**
 * Columns that give up width, in rounds, and how narrow each may get: first the names (ID /
 * NAME keeps `[vvvv:dddd]`, CLASS its first word), shared in proportion to what each can
 * give; then DRIVER. GROUP, VIABLE and DEVICE never shrink.
 */
const SHRINK_ROUNDS: readonly (readonly { col: number; min: number }[])[] = [
  [{ col: 3, min: 12 }, { col: 4, min: 8 }],
  [{ col: 5, min: 12 }],
];

/** Column widths (content only, no gap) that fit `width` where shrinking allows. */
export function fitWidths(natural: readonly number[], width: number): number[] {
  const widths = [...natural];
  const total = () => widths.reduce((a, b) => a + b, 0) + GAP * (widths.length - 1);
  for (const round of SHRINK_ROUNDS) {
    const over = total() - width;
    if (over <= 0) break;
    const give = round.map(({ col, min }) => Math.max(0, widths[col]! - min));
    const slack = give.reduce((a, b) => a + b, 0);
    if (slack === 0) continue;
    const take = Math.min(over, slack);
    let taken = 0;
    round.forEach(({ col }, i) => {
      // Proportional share, the last column takes the rounding.
      const share = i === round.length - 1 ? take - taken : Math.floor((take * give[i]!) / slack);
      widths[col] = widths[col]! - Math.min(share, give[i]!);
      taken += Math.min(share, give[i]!);
    });
  }
  return widths;
}

/**
 * TTY form: a borderless cli-table3 table (loaded only here: pipes and --json never pay for
 * it) that fits the terminal: no rules between rows, names shortened with … (full names in
 * `show`, in --json and with --wide), the group's "why shared" line under its rows.
 */
export async function renderGroupsTable(host: Host, views: readonly GroupView[], names: PciNames, c: ChalkInstance, layout: TtyLayout): Promise<string> {
  const { default: Table } = await import('cli-table3');
  const t = groupRows(host, views, names, c);
  const natural: number[] = t.header.map((h) => stripAnsi(h).length);
  for (const g of t.groups) for (const row of g.rows) row.forEach((cell, i) => (natural[i] = Math.max(natural[i]!, stripAnsi(cell).length)));
  const widths = layout.wide ? natural : fitWidths(natural, layout.width);
  const NONE = { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
    left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '' };
  // chalk is the only source of escape codes (cli-table3 would colour headers red).
  const table = new Table({
    head: t.header,
    chars: NONE,
    // cli-table3 widths include padding: the gap is each column's right padding.
    colWidths: widths.map((w) => w + GAP),
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': GAP, compact: true },
    wordWrap: false,
  });
  // Each row is one line (cells are cut, never wrapped); a group's why line follows its last row.
  const whyAfter = new Map<number, string>();
  for (const g of t.groups) {
    table.push(...g.rows);
    if (g.why) whyAfter.set(table.length, g.why);
  }
  const tableWidth = widths.reduce((a, b) => a + b, 0) + GAP * (widths.length - 1);
  const whyWidth = layout.wide ? Infinity : Math.max(layout.width, tableWidth);
  const lines = table.toString().split('\n');
  const out: string[] = [];
  lines.forEach((line: string, i: number) => {
    out.push(line.trimEnd());
    const why = whyAfter.get(i);
    if (why) out.push(c.dim(shorten(`        ${why}`, whyWidth)));
  });
  return out.join('\n');
}

/** A string of at most `width` characters, ending in … when cut. */
export function shorten(text: string, width: number): string {
  return text.length <= width ? text : text.slice(0, Math.max(0, width - 1)) + '…';
}

import type { ChalkInstance } from 'chalk';
import type { Host, IommuGroup, PciDevice } from '../../model/types.js';
import type { VfioNodes } from '../../sysfs/vfio-nodes.js';
import type { PciNames } from '../../sysfs/pciids.js';
import { deviceOf, groupBlockers, isVfioBound, overrideMismatch } from '../../model/host.js';
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

export function groupJson(host: Host, v: GroupView, names: PciNames, nodes?: (d: PciDevice) => VfioNodes) {
  return {
    id: v.group.id,
    viable: v.viable,
    blockers: v.blockers,
    reason: v.reason.text,
    reasonCode: v.reason.code,
    // The same members with a stable code for why each blocks (a driver that does not keep the group viable).
    blockedBy: v.blockers.map((b) => ({ bdf: b, code: 'host-driver', driver: deviceOf(host, b).driver })),
    devices: v.group.devices.map((b) => deviceJson(deviceOf(host, b), names, nodes)),
  };
}

/** A table cell as text pieces with their colour, so that it can be cut before it is painted. */
type Seg = { text: string; paint?: (s: string) => string };
type Cell = Seg[];

const plainLength = (cell: Cell) => cell.reduce((n, s) => n + s.text.length, 0);
const paint = (cell: Cell) => cell.map((s) => (s.paint ? s.paint(s.text) : s.text)).join('');

/** The cell cut to `width` characters, the last one an ellipsis when anything was cut; then painted. */
function cutCell(cell: Cell, width: number): string {
  if (plainLength(cell) <= width) return paint(cell);
  const out: Cell = [];
  let room = width - 1;
  for (const s of cell) {
    if (room <= 0) break;
    out.push({ ...s, text: s.text.slice(0, room) });
    room -= Math.min(room, s.text.length);
  }
  return paint(out) + '…';
}

function driverCell(host: Host, bdf: string, blocking: boolean, shared: boolean, c: ChalkInstance, terse: boolean): Cell {
  const d = deviceOf(host, bdf);
  const cell: Cell = [{ text: d.driver ?? '-', ...(isVfioBound(d) ? { paint: c.green } : blocking ? { paint: c.red } : {}) }];
  if (d.driverOverride !== null) cell.push(overrideMismatch(d) ? { text: ` (override ${d.driverOverride}!)`, paint: c.yellow } : { text: ` (override ${d.driverOverride})` });
  // On a terminal the row sits under its group's "no": one word says it.
  if (blocking && shared) cell.push({ text: terse ? ' (blocks)' : ' (blocks the group)' });
  return cell;
}

interface GroupRows {
  header: Cell[];
  /** Per group: its device rows, and the sentence explaining a shared group. */
  groups: { rows: Cell[][]; why: string | null }[];
}

/** The cells of the groups table, shared by the piped and the terminal form. */
function groupRows(host: Host, views: readonly GroupView[], names: PciNames, c: ChalkInstance, terse = false): GroupRows {
  const text = (t: string, p?: (s: string) => string): Cell => [p ? { text: t, paint: p } : { text: t }];
  return {
    header: ['GROUP', 'VIABLE', 'DEVICE', 'ID / NAME', 'CLASS', 'DRIVER'].map((h) => text(h, c.bold)),
    groups: views.map((v) => ({
      rows: v.group.devices.map((bdf, i) => {
        const d = deviceOf(host, bdf);
        return [
          text(i === 0 ? String(v.group.id) : ''),
          i === 0 ? (v.viable ? text('yes', c.green) : text('no', c.red)) : text(''),
          text(bdf),
          text(describeDevice(d, names)),
          text(describeClass(d, names) + (d.bridge ? ' (bridge)' : '')),
          driverCell(host, bdf, v.blockers.includes(bdf), v.group.devices.length > 1, c, terse),
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
  const rows = [t.header, ...t.groups.flatMap((g) => g.rows)].map((r) => r.map(paint));
  const reasonAfterRow = new Map<number, string>();
  let row = 0;
  for (const g of t.groups) {
    row += g.rows.length;
    if (g.why) reasonAfterRow.set(row, c.dim(`        ${g.why}`));
  }
  // Without colour (a pipe) a cell's length is its width: no escape codes to strip.
  const lines = columns(rows, 2, c.level === 0 ? undefined : (s) => stripAnsi(s).length).split('\n');
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
  const t = groupRows(host, views, names, c, true);
  const natural: number[] = t.header.map(plainLength);
  for (const g of t.groups) for (const row of g.rows) row.forEach((cell, i) => (natural[i] = Math.max(natural[i]!, plainLength(cell))));
  const widths = layout.wide ? natural : fitWidths(natural, layout.width);
  const tableWidth = widths.reduce((a, b) => a + b, 0) + GAP * (widths.length - 1);
  const whyWidth = layout.wide ? Infinity : Math.max(layout.width, tableWidth);
  // Cells are cut (then painted) here, so every row is one line of known width.
  const cut = (row: readonly Cell[]) => row.map((cell, i) => cutCell(cell, widths[i]!));
  const head = cut(t.header);
  const body = t.groups.map((g) => ({ rows: g.rows.map(cut), why: g.why === null ? null : c.dim(shorten(`        ${g.why}`, whyWidth)) }));
  const rowCount = body.reduce((n, g) => n + g.rows.length, 0);
  return rowCount <= CLI_TABLE_ROWS ? await cliTable(head, body, widths) : fixedColumns(head, body, widths);
}

type Body = readonly { rows: readonly string[][]; why: string | null }[];

/**
 * Up to this many rows the table is drawn by cli-table3. Its cost grows with the square of the
 * rows and is tens of microseconds per cell besides (4,096 functions took over a second), so
 * larger tables are laid out by fixedColumns, which prints the same lines (test/unit/groups.test.ts
 * holds the two to that) and costs no more than the piped form.
 */
export const CLI_TABLE_ROWS = 256;

/** The borderless, compact cli-table3 table (loaded only here: pipes and --json never pay for it). */
export async function cliTable(head: string[], body: Body, widths: readonly number[]): Promise<string> {
  const { default: Table } = await import('cli-table3');
  const NONE: Record<string, string> = { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
    left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '' };
  // chalk is the only source of escape codes (cli-table3 would colour headers red).
  const table = new Table({
    head,
    chars: NONE,
    // cli-table3 widths include padding: the gap is each column's right padding.
    colWidths: widths.map((w) => w + GAP),
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': GAP, compact: true },
    wordWrap: false,
  });
  // A group's why line follows its last row (line 0 is the head).
  const whyAfter = new Map<number, string>();
  for (const g of body) {
    table.push(...g.rows);
    if (g.why) whyAfter.set(table.length, g.why);
  }
  const out: string[] = [];
  table.toString().split('\n').forEach((line: string, i: number) => {
    out.push(line.trimEnd());
    const why = whyAfter.get(i);
    if (why) out.push(why);
  });
  return out.join('\n');
}

/** The same lines as cliTable, in linear time: each cell padded to its column, the gap after it. */
export function fixedColumns(head: readonly string[], body: Body, widths: readonly number[]): string {
  const line = (row: readonly string[]) => row.map((cell, i) => cell + ' '.repeat(Math.max(0, widths[i]! - stripAnsi(cell).length) + GAP)).join('').trimEnd();
  const out = [line(head)];
  for (const g of body) {
    for (const row of g.rows) out.push(line(row));
    if (g.why) out.push(g.why);
  }
  return out.join('\n');
}

/** A string of at most `width` characters, ending in … when cut. */
export function shorten(text: string, width: number): string {
  return text.length <= width ? text : text.slice(0, Math.max(0, width - 1)) + '…';
}

import type { ChalkInstance } from 'chalk';
import type { Bdf } from '../../model/address.js';

/** One ranked candidate of `variants` (JSON contract, schemaVersion 1). */
export interface CandidateJson {
  module: string;
  driver: string;
  alias: string;
  wildcards: number;
  /** The module is loaded (its driver name was read from /sys/module, not guessed). */
  loaded: boolean;
  /** The module is on disk (loaded, built in, or its .ko in modules.dep); false: modprobe would fail; null: unknown. */
  present: boolean | null;
}

export interface VariantsJson {
  bdf: Bdf;
  modalias: string | null;
  /** What was matched: the modalias, or without one the modalias built from the id files. */
  matchedModalias: string | null;
  candidates: CandidateJson[];
  /** Module `--variant auto` picks; null for bridges (never bindable). */
  chosen: string | null;
  chosenDriver: string | null;
  note: string | null;
}

export function renderVariants(devices: readonly VariantsJson[], c: ChalkInstance): string {
  const out: string[] = [];
  for (const d of devices) {
    out.push(`${c.bold(d.bdf)} ${d.modalias ?? (d.matchedModalias ? `${d.matchedModalias} (built from the ids)` : '(no modalias)')}`);
    if (d.note) out.push(`  ${c.yellow(d.note)}`);
    d.candidates.forEach((k, i) => {
      const mark = k.module === d.chosen && d.candidates.findIndex((x) => x.module === d.chosen) === i ? c.green('*') : ' ';
      const driver = k.driver === k.module ? '' : ` (driver ${k.driver})`;
      out.push(`  ${mark} ${i + 1}. ${k.module}${driver}  ${k.wildcards} wildcard${k.wildcards === 1 ? '' : 's'}  ${c.dim(k.alias)}${k.present === false ? c.red('  [not installed: modprobe would fail]') : k.loaded ? '' : c.dim('  [not loaded]')}`);
    });
    out.push(`  auto: ${d.chosen === null ? '(none)' : d.chosen === d.chosenDriver ? d.chosen : `${d.chosen} (driver ${d.chosenDriver})`}`);
  }
  return out.join('\n');
}

/** The one-line summary `show` prints. */
export function variantsSummary(d: VariantsJson): string {
  if (d.chosen === null) return d.note ?? '(none)';
  return d.candidates.map((k) => `${k.module} (${k.wildcards}${k.present === false ? ', not installed' : ''})`).join(', ') + ` -> auto: ${d.chosenDriver}`;
}

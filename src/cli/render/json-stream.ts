/**
 * A JSON document written in pieces, byte for byte what `JSON.stringify(doc, null, 2)`
 * prints, without ever holding the whole text (or, for a LazyArray, the whole object tree):
 * `groups --json` on 16,384 functions is an 18 MB text whose string, its UTF-8 copy and the
 * objects behind it were most of the command's memory.
 */

/** An array property made one element at a time, as it is written (`map` runs once per item). */
export class LazyArray<T = unknown> {
  constructor(
    readonly items: Iterable<T>,
    readonly map: (item: T) => unknown,
  ) {}
}

/** Array elements made and stringified together (memory for BATCH groups, not the host). */
const BATCH = 16;

/** Text handed to `write` at a time: large enough that each write(2) is worth its call. */
const CHUNK = 1 << 16;

/** `JSON.stringify(value, null, 2)` nested `indent` spaces deep (JSON strings hold no raw newline). */
function nested(value: unknown, indent: string): string | undefined {
  const text = JSON.stringify(value, null, 2) as string | undefined;
  return text === undefined || !text.includes('\n') ? text : text.replace(/\n/g, '\n' + indent);
}

/**
 * Write `doc` as `JSON.stringify(doc, null, 2)` would print it (a LazyArray printed as the array
 * of its mapped items), in chunks of about CHUNK characters. Plain values go through
 * JSON.stringify itself, so escaping, key order, skipped undefined members and `null` for
 * undefined array elements are its own. `end` follows the closing brace.
 */
export function writeJson(doc: Record<string, unknown>, write: (text: string) => void, end = ''): void {
  let buf = '';
  const put = (text: string) => {
    buf += text;
    if (buf.length >= CHUNK) {
      write(buf);
      buf = '';
    }
  };
  let first = true;
  for (const [key, value] of Object.entries(doc)) {
    if (!(value instanceof LazyArray)) {
      const text = nested(value, '  ');
      if (text === undefined) continue; // JSON.stringify leaves out undefined, functions and symbols
      put(`${first ? '{\n' : ',\n'}  ${JSON.stringify(key)}: ${text}`);
      first = false;
      continue;
    }
    put(`${first ? '{\n' : ',\n'}  ${JSON.stringify(key)}: [`);
    first = false;
    let empty = true;
    // Elements two levels deep, as JSON.stringify prints them there (null for undefined,
    // `,\n    ` between them), cut out of their brackets: cheaper than indenting their text
    // afterwards. BATCH at a time: one call per element cost half again as much.
    let batch: unknown[] = [];
    const flush = () => {
      put(`${empty ? '\n' : ',\n'}    ${JSON.stringify([batch], null, 2).slice(10, -6)}`);
      empty = false;
      batch = [];
    };
    for (const item of value.items) {
      batch.push(value.map(item));
      if (batch.length === BATCH) flush();
    }
    if (batch.length > 0) flush();
    put(empty ? ']' : '\n  ]');
  }
  buf += (first ? '{}' : '\n}') + end;
  write(buf);
}

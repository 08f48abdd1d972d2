/**
 * A strict JSON parser that remembers where each value starts, so a config error can name
 * its line and column. Rejects what JSON.parse silently accepts in a config file: duplicate
 * keys (JSON.parse keeps the last, hiding a typo). Bounded: nesting deeper than MAX_DEPTH is
 * an error (not a stack overflow), and messages quote at most a short prefix of a value.
 */
import { quoteShort } from '../model/names.js';

/** Deepest nesting of arrays and objects accepted (a desired-state file needs 3). */
export const MAX_DEPTH = 64;

export type JsonNode =
  | { kind: 'object'; line: number; col: number; entries: Map<string, { key: { line: number; col: number }; value: JsonNode }> }
  | { kind: 'array'; line: number; col: number; items: JsonNode[] }
  | { kind: 'string'; line: number; col: number; value: string }
  | { kind: 'number'; line: number; col: number; value: number }
  | { kind: 'boolean'; line: number; col: number; value: boolean }
  | { kind: 'null'; line: number; col: number };

export class JsonSyntaxError extends Error {
  constructor(readonly line: number, readonly col: number, message: string) {
    super(message);
  }
}

export function parseJsonWithPositions(text: string): JsonNode {
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const col = () => i - lineStart + 1;
  const fail = (msg: string): never => {
    throw new JsonSyntaxError(line, col(), msg);
  };
  const ws = () => {
    while (i < text.length) {
      const c = text[i]!;
      if (c === '\n') {
        line++;
        lineStart = i + 1;
      } else if (c !== ' ' && c !== '\t' && c !== '\r') break;
      i++;
    }
  };
  const describeChar = () => (i >= text.length ? 'end of input' : JSON.stringify(text[i]));
  let depth = 0;
  const enter = () => {
    if (++depth > MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} levels`);
  };

  const str = (): string => {
    i++; // opening quote
    let out = '';
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text[i]!;
      if (c === '"') {
        i++;
        return out;
      }
      if (c === '\\') {
        const e = text[i + 1];
        const map: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e !== undefined && e in map) {
          out += map[e];
          i += 2;
        } else if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) {
          out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16));
          i += 6;
        } else fail('invalid escape in string');
        continue;
      }
      if (c < ' ') fail('control character in string (escape it)');
      out += c;
      i++;
    }
  };

  const value = (): JsonNode => {
    ws();
    const at = { line, col: col() };
    const c = text[i];
    if (c === '{') {
      enter();
      i++;
      const entries = new Map<string, { key: { line: number; col: number }; value: JsonNode }>();
      ws();
      if (text[i] === '}') {
        i++;
        depth--;
        return { kind: 'object', ...at, entries };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail(`expected a "key" but found ${describeChar()}`);
        const keyAt = { line, col: col() };
        const key = str();
        if (entries.has(key)) throw new JsonSyntaxError(keyAt.line, keyAt.col, `duplicate key ${quoteShort(key)}`);
        ws();
        if (text[i] !== ':') fail(`expected ":" after ${quoteShort(key)} but found ${describeChar()}`);
        i++;
        entries.set(key, { key: keyAt, value: value() });
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          depth--;
          return { kind: 'object', ...at, entries };
        }
        fail(`expected "," or "}" but found ${describeChar()}`);
      }
    }
    if (c === '[') {
      enter();
      i++;
      const items: JsonNode[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        depth--;
        return { kind: 'array', ...at, items };
      }
      for (;;) {
        items.push(value());
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          depth--;
          return { kind: 'array', ...at, items };
        }
        fail(`expected "," or "]" but found ${describeChar()}`);
      }
    }
    if (c === '"') return { kind: 'string', ...at, value: str() };
    const lit = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 64));
    if (!lit) fail(`unexpected ${describeChar()}`);
    const word = lit![0];
    i += word.length;
    if (word === 'true' || word === 'false') return { kind: 'boolean', ...at, value: word === 'true' };
    if (word === 'null') return { kind: 'null', ...at };
    return { kind: 'number', ...at, value: Number(word) };
  };

  if (text.charCodeAt(0) === 0xfeff) i = 1; // a BOM from an editor
  const root = value();
  ws();
  if (i < text.length) fail(`unexpected ${describeChar()} after the document`);
  return root;
}

import { notFound, usageError } from '../errors.js';
import { quoteShort } from '../model/names.js';

/** One account from /etc/passwd or /etc/group. */
export interface Account {
  readonly name: string;
  readonly id: number;
}

/** `name:x:id:…` lines; comments, blanks and malformed lines are skipped. */
export function parseIdFile(text: string): Account[] {
  const out: Account[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [name, , id] = line.split(':');
    if (name && id !== undefined && /^\d+$/.test(id)) out.push({ name, id: Number(id) });
  }
  return out;
}

/**
 * A user or group given by name or number, the way chown(1) takes it: a name is looked up,
 * a number is accepted even without an entry (containers, LDAP users missing from the file).
 */
export function resolveAccount(kind: 'user' | 'group', text: string, entries: readonly Account[], file: string): Account {
  const t = text.trim();
  if (t === '') throw usageError(`empty ${kind}`, `give a ${kind} name or number`);
  if (/^\d+$/.test(t)) {
    const id = Number(t);
    if (id > 0xfffffffe) throw usageError(`${kind} ${quoteShort(t)}`, 'id out of range');
    return entries.find((e) => e.id === id) ?? { name: t, id };
  }
  const hit = entries.find((e) => e.name === t);
  if (!hit) throw notFound(`${kind} ${quoteShort(t)}`, `no such ${kind} in ${file}`, `give a ${kind} that exists under the root, or its number`, 'no-such-account');
  return hit;
}

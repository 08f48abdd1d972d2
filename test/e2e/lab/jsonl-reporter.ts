/**
 * Guest side: a node:test reporter that writes one JSON line per finished test,
 * so the host can rebuild the tree and report it with its own test runner.
 */
export interface ResultLine {
  name: string;
  nesting: number;
  file: string | null;
  status: 'pass' | 'fail' | 'skip' | 'todo';
  reason: string | null;
  error: string | null;
  failureType: string | null;
  durationMs: number;
}

interface TestEventData {
  name: string;
  nesting: number;
  file?: string;
  skip?: string | boolean;
  todo?: string | boolean;
  details?: { duration_ms?: number; error?: { message?: string; stack?: string; failureType?: string; cause?: unknown } };
}

function reasonOf(v: string | boolean | undefined): string | null {
  if (v === undefined || v === false) return null;
  return v === true ? '' : v;
}

function errorText(e: NonNullable<TestEventData['details']>['error']): string | null {
  if (!e) return null;
  // node:test wraps the thrown error; the useful message is usually in `cause`.
  const cause = e.cause as { message?: string; stack?: string } | undefined;
  const text = cause?.stack ?? cause?.message ?? e.stack ?? e.message ?? String(e);
  return text.length > 4000 ? text.slice(0, 4000) + '…' : text;
}

export default async function* jsonlReporter(source: AsyncIterable<{ type: string; data: TestEventData }>) {
  for await (const ev of source) {
    if (ev.type !== 'test:pass' && ev.type !== 'test:fail') continue;
    const d = ev.data;
    const skip = reasonOf(d.skip);
    const todo = reasonOf(d.todo);
    const line: ResultLine = {
      name: d.name,
      nesting: d.nesting,
      file: d.file ?? null,
      status: ev.type === 'test:fail' ? 'fail' : skip !== null ? 'skip' : todo !== null ? 'todo' : 'pass',
      reason: skip ?? todo,
      error: ev.type === 'test:fail' ? errorText(d.details?.error) : null,
      failureType: d.details?.error?.failureType ?? null,
      durationMs: Math.round(d.details?.duration_ms ?? 0),
    };
    yield JSON.stringify(line) + '\n';
  }
}

export interface ResultNode extends ResultLine {
  children: ResultNode[];
}

/** Children finish (and are reported) before their parent: rebuild the tree from that order. */
export function buildTree(lines: readonly ResultLine[]): ResultNode[] {
  const pending = new Map<number, ResultNode[]>();
  for (const l of lines) {
    const node: ResultNode = { ...l, children: pending.get(l.nesting + 1) ?? [] };
    pending.delete(l.nesting + 1);
    (pending.get(l.nesting) ?? pending.set(l.nesting, []).get(l.nesting)!).push(node);
  }
  return pending.get(0) ?? [];
}

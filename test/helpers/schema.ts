import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * Validation of --json output against the published schemas in schema/ (draft 2020-12).
 * cli() (helpers/cli.ts) calls validateJsonRun on every in-process run with --json, so a
 * field the code prints but the schema does not describe, or the other way round, fails the
 * test that printed it. Strict: every object is closed (additionalProperties: false) here,
 * although the published schemas leave objects open for consumers of newer versions.
 *
 * Other suites (the e2e lab) can call validateJsonRun(argv, code, stdout) on a spawned run.
 */
const require = createRequire(import.meta.url);
// ajv is CommonJS; the 2020-12 build is its own entry point.
const Ajv2020 = require('ajv/dist/2020').default as new (opts: object) => {
  addSchema(schema: object): unknown;
  getSchema(id: string): ((data: unknown) => boolean) & { errors?: unknown[] | null } | undefined;
  errorsText(errors?: unknown[] | null): string;
};

export const SCHEMA_DIR = path.join(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..'), 'schema');

/** Which schema a command's result document follows (bind, unbind and apply share one). */
export const SCHEMA_OF_COMMAND: Record<string, string> = {
  groups: 'groups',
  show: 'show',
  variants: 'variants',
  bind: 'bind',
  unbind: 'bind',
  apply: 'bind',
  'reset-plan': 'reset-plan',
  probe: 'probe',
  snapshot: 'snapshot',
  doctor: 'doctor',
  grant: 'grant',
  persist: 'persist',
  vfs: 'vfs',
};

/** Close every object schema that lists its properties. */
function closed(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(closed);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(node)) out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([p, s]) => [p, closed(s)])) : closed(v);
  if ('properties' in out && !('additionalProperties' in out)) out.additionalProperties = false;
  return out;
}

let ajv: InstanceType<typeof Ajv2020> | undefined;
function validator(): InstanceType<typeof Ajv2020> {
  if (ajv) return ajv;
  ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
  for (const file of fs.readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.schema.json'))) {
    ajv.addSchema(closed(JSON.parse(fs.readFileSync(path.join(SCHEMA_DIR, file), 'utf8'))) as object);
  }
  return ajv;
}

/** Validate one document against schema `name` (file schema/NAME.schema.json); throws with ajv's errors. */
export function validateDocument(name: string, doc: unknown): void {
  const v = validator().getSchema(`urn:vfioctl:schema:1:${name}`);
  if (!v) throw new Error(`no schema ${name} in ${SCHEMA_DIR}`);
  if (!v(doc)) throw new Error(`--json output does not match schema/${name}.schema.json: ${validator().errorsText(v.errors)}\n${JSON.stringify(doc, null, 2).slice(0, 4000)}`);
}

/** The subcommand of an argv (after global options), as commander would find it. */
export function commandOf(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--root') i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/**
 * The rules for a run with --json: stdout is exactly one JSON document (whatever the exit
 * code), an error document when the command printed none, and it matches its schema.
 * Runs without --json, and `apply --export` (a desired-state file, not a result), pass.
 */
export function validateJsonRun(argv: readonly string[], code: number, stdout: string): void {
  const end = argv.indexOf('--');
  const args = end < 0 ? argv : argv.slice(0, end);
  if (!args.includes('--json') || args.includes('--export')) return;
  let doc: { schemaVersion?: unknown; error?: unknown };
  try {
    doc = JSON.parse(stdout);
  } catch (err) {
    throw new Error(`vfioctl ${argv.join(' ')} (exit ${code}): stdout is not one JSON document: ${(err as Error).message}\n${stdout.slice(0, 2000)}`);
  }
  if (doc.error !== undefined) {
    validateDocument('error', doc);
    if ((doc.error as { exit: number }).exit !== code) throw new Error(`error document says exit ${(doc.error as { exit: number }).exit}, vfioctl exited ${code}`);
    return;
  }
  if ('help' in doc || 'version' in doc) {
    validateDocument('help' in doc ? 'help' : 'version', doc);
    return;
  }
  const command = commandOf(args);
  const schema = command === undefined ? undefined : SCHEMA_OF_COMMAND[command];
  if (!schema) throw new Error(`vfioctl ${argv.join(' ')}: no schema for the --json output of "${command}"`);
  validateDocument(schema, doc);
}

import { parentPort } from 'node:worker_threads';
import { cli } from './cli.js';

/**
 * Runs vfioctl in-process (through helpers/cli.ts) on request, in a worker thread, so the
 * bad-input suite can give up on a case that hangs (a blocking read) instead of hanging itself.
 */
export interface WorkerRequest {
  id: number;
  argv: string[];
  root?: string;
  env: Record<string, string>;
  /** Standard input as `apply -` gets it: this text, or `repeat` repeated past the cap as `yes |` would be. */
  stdin?: { text: string } | { repeat: string };
}

export interface WorkerReply {
  id: number;
  code?: number;
  stdout?: string;
  stderr?: string;
  thrown?: string;
}

parentPort!.on('message', async (req: WorkerRequest) => {
  try {
    const stdin = req.stdin;
    const r = await cli(req.argv, req.root, {
      env: req.env,
      ...(stdin === undefined ? {} : {
        readStdin: async (max?: number) => ('text' in stdin ? stdin.text : stdin.repeat.repeat(Math.ceil(((max ?? 1 << 20) + 1) / stdin.repeat.length))),
      }),
    });
    const reply: WorkerReply = { id: req.id, code: r.code, stdout: r.stdout.slice(0, 200_000), stderr: r.stderr.slice(0, 200_000) };
    parentPort!.postMessage(reply);
  } catch (err) {
    parentPort!.postMessage({ id: req.id, thrown: String((err as Error)?.stack ?? err) } satisfies WorkerReply);
  }
});

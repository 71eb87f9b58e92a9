/**
 * A child process driven by one JSON object per line: commands on its stdin,
 * replies on its stdout matched by `seq` (the load clients and the hop probe).
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

// Distributive Omit, so each command of a union keeps its own fields.
type CommandBody<C> = C extends { seq: number } ? Omit<C, 'seq'> : never;

/** One child speaking the line protocol; `C` is its command union. */
export class LineChild<C extends { seq: number }> {
  readonly child: ChildProcess;
  private seq = 0;
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  private exited: Error | null = null;

  constructor(child: ChildProcess, label: string) {
    this.child = child;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      // Anything but a reply (node's --trace-gc output, say) goes to stderr.
      if (!line.startsWith('{')) return void process.stderr.write(`[${label}] ${line}\n`);
      const msg = JSON.parse(line) as { seq: number };
      this.waiting.get(msg.seq)?.resolve(msg);
      this.waiting.delete(msg.seq);
    });
    child.once('exit', (code, signal) => {
      this.exited = new Error(`${label} exited (${code ?? signal})`);
      for (const w of this.waiting.values()) w.reject(this.exited);
      this.waiting.clear();
    });
  }

  /** Sends a command; resolves with the reply of the same `seq`. */
  send<R>(cmd: CommandBody<C>): Promise<R> {
    if (this.exited) return Promise.reject(this.exited);
    const seq = ++this.seq;
    return new Promise<R>((resolve, reject) => {
      this.waiting.set(seq, { resolve: resolve as (value: unknown) => void, reject });
      this.child.stdin!.write(`${JSON.stringify({ ...cmd, seq })}\n`);
    });
  }
}

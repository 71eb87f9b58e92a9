/**
 * The simulator's `/_sim/` control API as the benchmark uses it (session setup,
 * event appends, request counters). Plain node:http with keep-alive: appends
 * run at hundreds a second from the client core, where fetch would cost the
 * orchestrator several times the CPU.
 */
import { Agent, request } from 'node:http';
import type { SessionSpec, SessionStats } from '../src/simulator/types.ts';

/** Control connections kept open to the simulator. */
const MAX_SOCKETS = 8;

/** Talks to one simulator process. */
export class SimControl {
  readonly url: string;
  private readonly target: URL;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });

  constructor(url: string) {
    this.url = url;
    this.target = new URL(url);
  }

  private call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, retried = false): Promise<T> {
    const payload = body === undefined ? null : JSON.stringify(body);
    return new Promise<T>((resolve, reject) => {
      let answered = false;
      const req = request(
        {
          host: this.target.hostname,
          port: this.target.port,
          method,
          path: `/_sim/${path}`,
          agent: this.agent,
          headers: payload === null ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        },
        (res) => {
          answered = true;
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (s: string) => (text += s));
          res.on('end', () => {
            if ((res.statusCode ?? 0) >= 300) reject(new Error(`simulator ${method} /_sim/${path}: ${res.statusCode} ${text}`));
            else resolve(JSON.parse(text) as T);
          });
          res.on('error', reject);
        },
      );
      req.on('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive socket the simulator closed as idle just as this request went out (its keep-alive
        // timeout): no answer began, so it is sent once more on a fresh socket (Node's documented remedy).
        // A reset after an answer began is an error: the simulator may have acted on the request.
        if (req.reusedSocket && err.code === 'ECONNRESET' && !answered && !retried) this.call<T>(method, path, body, true).then(resolve, reject);
        else reject(err);
      });
      req.end(payload ?? undefined);
    });
  }

  /** Creates a session (idle unless the spec emits on its own). */
  async createSession(id: string, spec: SessionSpec = {}): Promise<void> {
    await this.call('POST', 'sessions', { id, ...spec });
  }

  /** Appends `count` events at once (one simulator tick, stamped `emitted_at_ms` now). */
  async append(id: string, count: number): Promise<void> {
    await this.call('POST', `sessions/${encodeURIComponent(id)}/events`, { count });
  }

  /** Marks a session finished. */
  async finish(id: string): Promise<void> {
    await this.call('POST', `sessions/${encodeURIComponent(id)}/finish`, {});
  }

  /** Deletes a session and its events (a 100,000-event history or 100 KB events would otherwise pile up over a run). */
  async deleteSession(id: string): Promise<void> {
    await this.call('DELETE', `sessions/${encodeURIComponent(id)}`);
  }

  async resetStats(): Promise<void> {
    await this.call('POST', 'stats/reset', {});
  }

  /** Every sessions-API request served since the last reset (list calls included), and the changes and status calls among them. */
  async totals(): Promise<{ requests: number; changes: number; status: number }> {
    const r = await this.call<{ totals: { requests: number; changes: number; status: number } }>('GET', 'stats');
    return r.totals;
  }

  /** Request counters per session id. */
  async sessionStats(): Promise<Record<string, SessionStats>> {
    const r = await this.call<{ sessions: Record<string, SessionStats> }>('GET', 'stats');
    return r.sessions;
  }
}

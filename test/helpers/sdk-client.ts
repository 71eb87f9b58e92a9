/**
 * A client that follows the official SDK's `waitForSession` helper step by
 * step (the registry here does not carry `hai-agents`): long-poll `changes`
 * with `include_events=true`, then `status` after every answer; once the
 * status is settled (`completed|failed|timed_out|interrupted|idle`), drain
 * `changes` with `wait_for_seconds=0` until a 204 or an empty page, then one
 * `changes` call with `from_index=0&include_events=false&wait_for_seconds=0`
 * for the answer. It talks to `{baseUrl}/sessions/...` exactly as the SDK
 * does with its `baseUrl` (which carries `/api/v2`).
 */

/** Statuses after which the SDK stops waiting. */
export const SDK_SETTLED = new Set(['completed', 'failed', 'timed_out', 'interrupted', 'idle']);

export interface SdkEvent {
  type: string;
  data: unknown;
  timestamp: string;
}

export interface SdkResult {
  status: string;
  answer: unknown;
  events: SdkEvent[];
  /** Requests this client made, by endpoint. */
  calls: { changes: number; status: number };
}

export interface SdkOptions {
  /** Bearer credential (the API key upstream; a subscriber JWT through pollcast with auth on). */
  apiKey?: string;
  /** `wait_for_seconds` of the long-poll. */
  waitSeconds?: number;
  /** Give up after this long (ms). */
  timeoutMs?: number;
  /**
   * false: stop at the settled status without draining `changes` first, as the SDK's `polling.ts` does in the
   * version an audit read (7 Dec 2026); what the loop's last `changes` answers gave is all it has. Default true.
   */
  drainAfterSettled?: boolean;
}

/** Runs the waitForSession loop against `baseUrl` for `sessionId`. */
export async function waitForSession(baseUrl: string, sessionId: string, opts: SdkOptions = {}): Promise<SdkResult> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.apiKey) headers.authorization = `Bearer ${opts.apiKey}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  const calls = { changes: 0, status: 0 };
  const events: SdkEvent[] = [];
  const base = `${baseUrl.replace(/\/+$/, '')}/sessions/${encodeURIComponent(sessionId)}`;

  async function get(path: string): Promise<{ status: number; body: any }> {
    if (Date.now() > deadline) throw new Error(`sdk client: ${sessionId} did not settle in time (${events.length} events)`);
    const res = await fetch(`${base}${path}`, { headers, signal: AbortSignal.timeout(Math.max(1000, deadline - Date.now())) });
    const text = await res.text();
    if (res.status !== 200 && res.status !== 204) throw new Error(`sdk client: ${path} answered ${res.status}: ${text}`);
    return { status: res.status, body: text ? JSON.parse(text) : null };
  }
  async function changes(from: number, wait: number, includeEvents = true): Promise<{ status: number; body: any }> {
    calls.changes++;
    return get(`/changes?from_index=${from}&include_events=${includeEvents}&wait_for_seconds=${wait}`);
  }

  for (;;) {
    const r = await changes(events.length, opts.waitSeconds ?? 5);
    if (r.status === 200) events.push(...(r.body.new_events as SdkEvent[]));
    calls.status++;
    const s = await get('/status');
    if (!SDK_SETTLED.has(s.body.status)) continue;
    for (; opts.drainAfterSettled !== false; ) {
      const d = await changes(events.length, 0);
      if (d.status === 204 || d.body.new_events.length === 0) break;
      events.push(...(d.body.new_events as SdkEvent[]));
    }
    const final = await changes(0, 0, false);
    return { status: s.body.status, answer: final.status === 200 ? final.body.answer : null, events, calls };
  }
}

/**
 * The naive server's upstream call, shared by the baseline (bench/baseline.ts),
 * the hop probe (bench/hop-probe.ts) and the test that compares pollcast's
 * upstream calls with a naive loop's (test/bridge/no-batching.test.ts), so
 * each measures exactly the hop the baseline pays: a keep-alive node:http GET
 * of one changes page, decoded as UTF-8 text.
 */
import { Agent, get } from 'node:http';

/** wait_for_seconds of the loop, as pollcast's default. */
export const WAIT_SECONDS = 25;
/** limit per changes call, as pollcast's default page size. */
export const PAGE_SIZE = 100;
/** Delay after an upstream failure (ms). */
export const RETRY_MS = 1_000;

/** One changes call from `from`: the status and the body's text. */
export type ChangesText = (id: string, from: number, waitSeconds?: number) => Promise<{ status: number; text: string }>;

/** A naive long-poll client of the upstream at `upstreamUrl` (simple dialect: no base path); `close()` drops its sockets. */
export function naiveLongPoll(upstreamUrl: string): { changesText: ChangesText; close(): void } {
  const upstream = new URL(upstreamUrl);
  const agent = new Agent({ keepAlive: true });
  const changesText: ChangesText = (id, from, waitSeconds = WAIT_SECONDS) => {
    const path = `${upstream.pathname.replace(/\/$/, '')}/sessions/${encodeURIComponent(id)}/changes?from_index=${from}&limit=${PAGE_SIZE}&include_details=true&wait_for_seconds=${waitSeconds}`;
    return new Promise((resolve, reject) => {
      get({ host: upstream.hostname, port: upstream.port, path, agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (s: string) => (text += s));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        res.on('error', reject);
      }).on('error', reject);
    });
  };
  return { changesText, close: () => agent.destroy() };
}

let fromEnv: ReturnType<typeof naiveLongPoll> | undefined;

/** One changes call to `UPSTREAM_URL` (the baseline's and the probe's upstream). */
export const changesText: ChangesText = (id, from, waitSeconds) => {
  fromEnv ??= naiveLongPoll(process.env.UPSTREAM_URL ?? 'http://127.0.0.1:8081');
  return fromEnv.changesText(id, from, waitSeconds);
};

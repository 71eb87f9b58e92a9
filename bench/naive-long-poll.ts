/**
 * The naive server's upstream call, shared by the baseline (bench/baseline.ts)
 * and the hop probe (bench/hop-probe.ts), so the probe measures exactly the
 * hop the baseline pays: a keep-alive node:http GET of one changes page,
 * decoded as UTF-8 text.
 */
import { Agent, get } from 'node:http';

/** wait_for_seconds of the loop, as pollcast's default. */
export const WAIT_SECONDS = 25;
/** limit per changes call, as pollcast's default page size. */
export const PAGE_SIZE = 100;
/** Delay after an upstream failure (ms). */
export const RETRY_MS = 1_000;

const upstream = new URL(process.env.UPSTREAM_URL ?? 'http://127.0.0.1:8081');
const agent = new Agent({ keepAlive: true });

/** One changes call from `from`: the status and the body's text. */
export function changesText(id: string, from: number): Promise<{ status: number; text: string }> {
  const path = `/sessions/${encodeURIComponent(id)}/changes?from_index=${from}&limit=${PAGE_SIZE}&include_details=true&wait_for_seconds=${WAIT_SECONDS}`;
  return new Promise((resolve, reject) => {
    get({ host: upstream.hostname, port: upstream.port, path, agent }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => (text += s));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** A client written like the SDK (`baseUrl` on pollcast, the caller's own key), and a bridge in front of the real-API simulator with per-key visibility. */
import { startBridge, type Bridge } from '../helpers/harness.ts';

/** The operator's key (UPSTREAM_API_KEY: the loops' credential, never forwarded) and two callers' keys in two organisations. */
export const OPERATOR_KEY = 'operator-key-0123';
export const KEY_A = 'caller-key-org-a';
export const KEY_B = 'caller-key-org-b';

/** Upper bound of one client call in these tests (ms). */
export const CALL_TIMEOUT_MS = 10_000;

/** pollcast on the simulator in real-API mode: OPERATOR_KEY sees everything, KEY_A and KEY_B their organisation's sessions. */
export function startGateway(env: Record<string, string> = {}): Promise<Bridge> {
  return startBridge(
    { UPSTREAM_API_KEY: OPERATOR_KEY, ...env },
    { api: 'real', apiKey: OPERATOR_KEY, apiKeys: { [KEY_A]: 'org-a', [KEY_B]: 'org-b' }, run: { eventEveryMs: 100, events: 30 }, maxWaitSeconds: 30 },
  );
}

/** One call as the SDK makes it: JSON in, the caller's key as `Authorization: Bearer`, no redirect followed. */
export async function api(
  baseUrl: string,
  key: string | undefined,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: any }> {
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    redirect: 'manual',
    signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
    headers: {
      accept: 'application/json',
      ...(key !== undefined ? { authorization: `Bearer ${key}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text === '' ? null : JSON.parse(text);
  } catch {
    // Not JSON: the text itself.
  }
  return { status: res.status, headers: res.headers, body: parsed };
}

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { InvalidInputError } from './errors.ts';

/** Who a request speaks for: `organisation` undefined sees every session (no keys, or the operator-wide `apiKey`). */
export interface Caller {
  readonly organisation: string | undefined;
}

/** The answer of KeyRing.authenticate: a caller, or why it is refused (both are 401 on the wire). */
export type Authentication = { ok: true; caller: Caller } | { ok: false; reason: 'missing' | 'invalid' | 'revoked' };

const OPEN: Caller = Object.freeze({ organisation: undefined });

function digest(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  // Constant time, so the simulator does not teach clients a timing oracle by example.
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The API keys the simulator accepts. `apiKey` (today's single key) sees every
 * session; each key of `apiKeys` sees only its organisation's sessions, as the
 * real API scopes a key (another organisation's session answers 404). Keys can
 * be added and revoked at runtime; a revoked key is refused with 401 from then on.
 */
export class KeyRing {
  readonly #wide: string | undefined;
  /** sha256(key) → organisation: lookups by digest, so no comparison leaks timing. */
  readonly #scoped = new Map<string, string>();
  readonly #revoked = new Set<string>();
  readonly #header: string;

  constructor(apiKey: string | undefined, apiKeys: Record<string, string> | undefined, authHeader: string) {
    this.#wide = apiKey;
    this.#header = authHeader;
    if (apiKeys !== undefined) {
      if (typeof apiKeys !== 'object' || apiKeys === null || Array.isArray(apiKeys)) throw new InvalidInputError('apiKeys must be an object { key: organisation }');
      for (const [key, organisation] of Object.entries(apiKeys)) this.add(key, organisation);
    }
  }

  /** True when some key is needed (otherwise every request is an all-seeing caller). */
  get required(): boolean {
    return this.#wide !== undefined || this.#scoped.size > 0;
  }

  /** Accepts `key` for `organisation` from now on (un-revokes it if it was revoked). */
  add(key: string, organisation: string): void {
    if (typeof key !== 'string' || key === '') throw new InvalidInputError('key must be a non-empty string');
    if (typeof organisation !== 'string' || organisation === '') throw new InvalidInputError('organisation must be a non-empty string');
    const d = digest(key);
    this.#scoped.set(d, organisation);
    this.#revoked.delete(d);
  }

  /** Refuses `key` (scoped or the wide one) with 401 from now on. */
  revoke(key: string): void {
    if (typeof key !== 'string' || key === '') throw new InvalidInputError('key must be a non-empty string');
    this.#revoked.add(digest(key));
  }

  /** The raw credential of `req`, as the API reads it (`Authorization: Bearer <key>`, or the raw value of the configured header). */
  credentialOf(req: IncomingMessage): string | undefined {
    const raw = req.headers[this.#header];
    const value = Array.isArray(raw) ? raw[0] : raw;
    if (value === undefined) return undefined;
    if (this.#header !== 'authorization') return value;
    return /^Bearer\s+(.+)$/i.exec(value)?.[1]?.trim();
  }

  authenticate(req: IncomingMessage): Authentication {
    if (!this.required) return { ok: true, caller: OPEN };
    const key = this.credentialOf(req);
    if (key === undefined || key === '') return { ok: false, reason: 'missing' };
    const d = digest(key);
    if (this.#revoked.has(d)) return { ok: false, reason: 'revoked' };
    if (this.#wide !== undefined && sameSecret(key, this.#wide)) return { ok: true, caller: OPEN };
    const organisation = this.#scoped.get(d);
    return organisation === undefined ? { ok: false, reason: 'invalid' } : { ok: true, caller: { organisation } };
  }
}

/** Whether `caller` may see a session owned by `owner` (undefined: a session every key sees, such as the demo's). */
export function canSee(caller: Caller, owner: string | undefined): boolean {
  return caller.organisation === undefined || owner === undefined || owner === caller.organisation;
}

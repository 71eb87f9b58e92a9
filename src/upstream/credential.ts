/**
 * A caller's own upstream credential (AUTH=upstream): the header it is sent
 * in and its value, and a digest that stands for it wherever it is kept as a
 * key (verdict caches, loop scopes, list polls), so the credential itself is
 * held only where a request needs it and never reaches a log.
 */
import { createHash } from 'node:crypto';

/** A credential to send upstream in place of the operator's `UPSTREAM_API_KEY`. */
export interface UpstreamCredential {
  /** Lower-case header name: `authorization`, or `UPSTREAM_AUTH_HEADER`. */
  readonly header: string;
  /** The header's value exactly as the caller sent it (`Bearer <key>`, or the raw key). */
  readonly value: string;
  /** SHA-256 of header and value, hex: the credential's name in memory and metrics. */
  readonly digest: string;
}

/** Makes the credential for a header and its value. */
export function upstreamCredential(header: string, value: string): UpstreamCredential {
  const name = header.toLowerCase();
  const digest = createHash('sha256').update(name).update('\0').update(value).digest('hex');
  // The value is not enumerable: a credential logged or serialised by mistake shows only its header and digest.
  const credential = { header: name, digest } as { header: string; value: string; digest: string };
  Object.defineProperty(credential, 'value', { value, enumerable: false });
  return Object.freeze(credential);
}

/** Accepted credentials one loop may run on (a handful: any one will do; more add nothing). */
export const CALLER_CREDENTIALS_MAX = 8;

/**
 * The callers' credentials the upstream accepted for one session, by digest,
 * most recently accepted last: a loop without `UPSTREAM_API_KEY` runs on the
 * newest, and moves to the next one when the upstream stops accepting it.
 * Bounded (CALLER_CREDENTIALS_MAX; past it the oldest is dropped).
 */
export class CallerCredentials {
  private readonly byDigest = new Map<string, UpstreamCredential>();

  /** Records a credential the upstream just accepted for this session. */
  add(credential: UpstreamCredential): void {
    this.byDigest.delete(credential.digest);
    this.byDigest.set(credential.digest, credential);
    if (this.byDigest.size > CALLER_CREDENTIALS_MAX) this.byDigest.delete(this.byDigest.keys().next().value!);
  }

  /** The credential to use now (the newest accepted), or undefined when none is held. */
  current(): UpstreamCredential | undefined {
    let last: UpstreamCredential | undefined;
    for (const c of this.byDigest.values()) last = c;
    return last;
  }

  /** Forgets a credential the upstream refused; true when it was held. */
  drop(digest: string): boolean {
    return this.byDigest.delete(digest);
  }

  /** Forgets them all (the loop stopped: nothing needs them any more). */
  clear(): void {
    this.byDigest.clear();
  }

  get size(): number {
    return this.byDigest.size;
  }
}

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

/**
 * The one place where the subscriber authentication mode is chosen
 * (CONTRACT.md section 4): tokens, callers' own upstream keys, both, or none.
 * Combined, a bearer that is a valid pollcast token is judged by its claims,
 * and anything else is checked with the upstream.
 */
import { compactVerify } from 'jose';
import type { Config } from '../config.ts';
import { UnauthorizedError } from '../errors.ts';
import type { Stats } from '../metrics.ts';
import type { UpstreamClient } from '../upstream/client.ts';
import { allowAll, createJwtAuthorizer, MAX_TOKEN_LENGTH, type Authorizer, type Credentials } from './auth.ts';
import { createUpstreamKeyAuthorizer } from './auth-upstream.ts';

/** What the upstream-key mode needs besides the config. */
export interface AuthorizerDeps {
  client: UpstreamClient;
  stats: Stats;
}

/** The bearer a token would be read from (header, else query), unparsed. */
function bearerOf({ authorization, accessToken }: Credentials): string | undefined {
  const m = authorization === undefined ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(authorization);
  return m ? m[1] : accessToken;
}

/**
 * True when `bearer` carries pollcast's own HS256 signature, whatever its
 * claims: such a token (expired, say) is refused as a token, never sent
 * upstream as if it were a key.
 */
async function signedByUs(bearer: string | undefined, key: Uint8Array): Promise<boolean> {
  if (bearer === undefined || bearer.length > MAX_TOKEN_LENGTH || bearer.split('.').length !== 3) return false;
  try {
    await compactVerify(bearer, key, { algorithms: ['HS256'] });
    return true;
  } catch {
    return false;
  }
}

/** Token first, the upstream for anything that is not a pollcast token (a valid token short of a session stays a 403). */
function tokenOrKey(token: Authorizer, key: Authorizer, secret: string): Authorizer {
  const secretKey = new TextEncoder().encode(secret);
  return async (credentials, sessionIds) => {
    try {
      return await token(credentials, sessionIds);
    } catch (err) {
      if (!(err instanceof UnauthorizedError) || (await signedByUs(bearerOf(credentials), secretKey))) throw err;
      return key(credentials, sessionIds);
    }
  };
}

/** The authorizer `config` asks for; the built-in demo and AUTH=none let everyone in. */
export function createAuthorizer(config: Config, deps: AuthorizerDeps): Authorizer {
  const token = config.authJwtSecret ? createJwtAuthorizer(config.authJwtSecret) : undefined;
  if (config.auth !== 'upstream') return token ?? allowAll;
  const key = createUpstreamKeyAuthorizer({ client: deps.client, cacheSeconds: config.authUpstreamCacheSeconds, keyHeader: config.upstreamAuthHeader, stats: deps.stats });
  return token && config.authJwtSecret ? tokenOrKey(token, key, config.authJwtSecret) : key;
}

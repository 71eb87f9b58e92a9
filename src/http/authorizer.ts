/**
 * The one place where the subscriber authentication mode is chosen
 * (CONTRACT.md section 4): tokens, callers' own upstream keys, both, or none.
 * Combined, a bearer that is a valid pollcast token is judged by its claims,
 * and anything else is checked with the upstream.
 */
import { openAccess, tokenAuthConfigured, type Config } from '../config.ts';
import { UnauthorizedError } from '../errors.ts';
import type { Logger } from 'pino';
import type { Stats } from '../metrics.ts';
import type { UpstreamClient } from '../upstream/client.ts';
import { allowAll, noSubscriberTokens, presentedBearer, type Authorizer, type SubscriberTokenCheck } from './auth.ts';
import { createJwtAuthorizer, createTokenVerifier, credentialFromCookie, tokenOptionsOf, type TokenVerifier } from './auth-token.ts';
import { createUpstreamKeyAuthorizer } from './auth-upstream.ts';

/** What the upstream-key mode needs besides the config. */
export interface AuthorizerDeps {
  client: UpstreamClient;
  stats: Stats;
}

/**
 * Token first, the upstream for anything that is not a pollcast token (a valid token short of a session stays a 403).
 * `keyHeader`: UPSTREAM_AUTH_HEADER's name, when set; `cookieName`: AUTH_COOKIE_NAME.
 */
function tokenOrKey(token: Authorizer, key: Authorizer, isOurs: SubscriberTokenCheck, keyHeader: string | undefined, cookieName: string): Authorizer {
  // A bearer with pollcast's own signature (expired, say) is refused as a token, never sent upstream as a key.
  return async (credentials, sessionIds, options) => {
    try {
      return await token(credentials, sessionIds);
    } catch (err) {
      if (!(err instanceof UnauthorizedError)) throw err;
      // The bearer was judged as a token above: its own fault is the answer.
      const bearer = presentedBearer(credentials);
      if (bearer !== undefined && (await isOurs(bearer))) throw err;
      const inKeyHeader = credentials.keyHeader?.trim();
      // The cookie is only ever read as a token (keys come in a header or access_token): with no key beside it, what
      // was wrong with it (expired, malformed) is the answer, not "an upstream key is required".
      if (bearer === undefined && (inKeyHeader === undefined || inKeyHeader === '') && credentialFromCookie(credentials, cookieName)) throw err;
      if (inKeyHeader !== undefined && inKeyHeader !== '' && (await isOurs(inKeyHeader))) {
        // Tokens are not read from the key header: the refusal says so, not only where a token was looked for.
        throw keyHeader === undefined ? err : new UnauthorizedError(`a pollcast access token is read from Authorization: Bearer, access_token or the cookie, not from ${keyHeader} (it carries upstream keys)`);
      }
      return key(credentials, sessionIds, options);
    }
  };
}

/** The token verifier `config` asks for (one, so its JWKS cache is shared), or undefined without token auth. */
export function createVerifier(config: Config, log?: Logger): TokenVerifier | undefined {
  return tokenAuthConfigured(config) ? createTokenVerifier({ ...tokenOptionsOf(config), log }) : undefined;
}

/** Whether a bearer is a pollcast token, for stripping it from forwarded requests. */
export function subscriberTokenCheck(verifier: TokenVerifier | undefined): SubscriberTokenCheck {
  return verifier ? (value) => verifier.isOurs(value) : noSubscriberTokens;
}

/** The authorizer `config` asks for; the built-in demo and AUTH=none let everyone in. */
export function createAuthorizer(config: Config, deps: AuthorizerDeps, verifier: TokenVerifier | undefined): Authorizer {
  if (openAccess(config)) return allowAll;
  const token = verifier ? createJwtAuthorizer(tokenOptionsOf(config), verifier) : undefined;
  if (config.auth !== 'upstream') return token ?? allowAll;
  const key = createUpstreamKeyAuthorizer({ client: deps.client, cacheSeconds: config.authUpstreamCacheSeconds, keyHeader: config.upstreamAuthHeader, stats: deps.stats });
  return token && verifier ? tokenOrKey(token, key, subscriberTokenCheck(verifier), config.upstreamAuthHeader, config.authCookieName) : key;
}

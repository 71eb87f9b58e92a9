// pollcast browser client: a dependency-free ES module around EventSource for
// GET /sessions/{id}/events (one session) and GET /events (several sessions on
// one connection). Served by pollcast at /pollcast-client.js; types in
// pollcast-client.d.ts beside it.
//
//   import { connect, connectMany } from '/pollcast-client.js';
//   const stream = connect('', 'demo-1', {
//     onEvent: (e) => console.log(e.index, e.type, e.data),
//     onStatus: (s) => console.log(s.status, s.metrics.steps),
//     onEnd: (end) => console.log('finished', end.status, end.answer),
//   });
//   // later: stream.close();
//
//   // A dashboard: every session on ONE connection (browsers allow about six
//   // HTTP/1.1 connections per origin), each callback told which session.
//   const board = connectMany('', ['demo-1', 'demo-2', 'demo-3'], {
//     overview: true, // status and end only, no events (no screenshots)
//     onStatus: (s) => console.log(s.session, s.status, s.metrics.total_cost),
//     onEnd: (end) => console.log(end.session, 'finished'),
//   });
//   board.add(['demo-4']); // a session that appeared later, on the same connection
//
//   // Short-lived tokens: give a function; it is asked again when the token
//   // expires (or is refused with 401) and the stream resumes where it was.
//   connect('https://live.example.com', 'demo-1', {
//     accessToken: () => fetch('/api/pollcast-token').then((r) => r.text()),
//     onEvent, onStatus, onEnd,
//   });

/**
 * @typedef {import('./pollcast-client.d.ts').PollcastEvent} PollcastEvent
 * @typedef {import('./pollcast-client.d.ts').PollcastStatus} PollcastStatus
 * @typedef {import('./pollcast-client.d.ts').PollcastEnd} PollcastEnd
 * @typedef {import('./pollcast-client.d.ts').ConnectOptions} ConnectOptions
 * @typedef {import('./pollcast-client.d.ts').PollcastStream} PollcastStream
 * @typedef {import('./pollcast-client.d.ts').ConnectManyOptions} ConnectManyOptions
 * @typedef {import('./pollcast-client.d.ts').PollcastManyStream} PollcastManyStream
 * @typedef {import('./pollcast-client.d.ts').SessionEvent} SessionEvent
 * @typedef {import('./pollcast-client.d.ts').SessionStatus} SessionStatus
 * @typedef {import('./pollcast-client.d.ts').SessionEnd} SessionEnd
 * @typedef {import('./pollcast-client.d.ts').PollcastError} PollcastError
 * @typedef {import('./pollcast-client.d.ts').PollcastManyError} PollcastManyError
 */

/**
 * Where pollcast is served, as a URL ending in '/'.
 * @param {string} baseUrl
 * @returns {URL}
 */
function baseOf(baseUrl) {
  const here = typeof location === 'undefined' ? undefined : location.href;
  const base = new URL(baseUrl === '' ? '/' : baseUrl, here);
  // Keep a path prefix (pollcast mounted under /live/), whatever the trailing slash.
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  return base;
}

/**
 * The stream URL for a session.
 * @param {string} baseUrl where pollcast is served ('' or '/' for this page's origin)
 * @param {string} sessionId
 * @param {{ accessToken?: string, fromIndex?: number, includeDetails?: boolean, lastEventId?: number }} [options]
 * @returns {string}
 */
export function streamUrl(baseUrl, sessionId, options = {}) {
  const url = new URL(`sessions/${encodeURIComponent(sessionId)}/events`, baseOf(baseUrl));
  if (options.fromIndex !== undefined) url.searchParams.set('from_index', String(options.fromIndex));
  // A new EventSource cannot send Last-Event-ID: the query carries it (the browser's own reconnects send the header, which wins).
  if (options.lastEventId !== undefined) url.searchParams.set('last_event_id', String(options.lastEventId));
  if (options.includeDetails === false) url.searchParams.set('include_details', 'false');
  // EventSource cannot send headers, so the token travels in the query (pollcast never logs it).
  if (typeof options.accessToken === 'string' && options.accessToken) url.searchParams.set('access_token', options.accessToken);
  return url.href;
}

/**
 * The current token: the string given, or what the function gives now.
 * @param {string | (() => string | undefined | Promise<string | undefined>) | undefined} source
 * @returns {Promise<string | undefined>}
 */
async function tokenOf(source) {
  return typeof source === 'function' ? await source() : source;
}

/**
 * The code of a server's `event: error` frame (`token_expired`, …), or
 * undefined for the EventSource's own error (a connection problem): both
 * arrive as `error` events.
 * @param {Event} e
 * @returns {string | undefined}
 */
function serverErrorCode(e) {
  const data = /** @type {MessageEvent} */ (e).data;
  if (typeof data !== 'string') return undefined;
  try {
    const value = JSON.parse(data);
    return value && typeof value.error === 'string' ? value.error : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Why an EventSource was refused: the status of the same request made with
 * fetch (HEAD opens no stream); undefined when it cannot be learnt.
 * @param {string} url
 * @param {boolean} withCredentials
 * @returns {Promise<number | undefined>}
 */
async function refusalStatus(url, withCredentials) {
  try {
    const res = await fetch(url, { method: 'HEAD', credentials: withCredentials ? 'include' : 'same-origin', cache: 'no-store' });
    return res.status;
  } catch {
    return undefined;
  }
}

/**
 * What a refused open is reported with: the answer's status, its `code` (as `error`) and its text (as `message`),
 * asked again with fetch (EventSource hides them); nothing when that cannot be learnt.
 * @param {string} url
 * @param {{ withCredentials?: boolean }} options
 * @returns {Promise<{ status?: number, error?: string, message?: string }>}
 */
async function refusedWith(url, options) {
  const why = await refusalOf(url, Boolean(options.withCredentials));
  if (why === undefined) return {};
  return { status: why.status, ...(why.code ? { error: why.code } : {}), ...(why.error ? { message: why.error } : {}) };
}

/**
 * What runs the renewals of one stream: asks the token source again when
 * the server says the token expired, or when an open is refused with 401
 * (once per open, so a source handing out refused tokens cannot loop).
 * @param {ConnectOptions | ConnectManyOptions} options
 */
function renewal(options) {
  const renewable = typeof options.accessToken === 'function';
  let triedSinceOpen = false;
  return {
    renewable,
    /** A connection opened: a later refusal may be renewed again. */
    opened() {
      triedSinceOpen = false;
    },
    /**
     * After an open was refused: true when a fresh token should be tried (a 401, or an answer that cannot be read).
     * @param {string} url
     */
    async afterRefusal(url) {
      if (!renewable || triedSinceOpen) return false;
      triedSinceOpen = true;
      const status = await refusalStatus(url, Boolean(options.withCredentials));
      return status === undefined || status === 401;
    },
  };
}

/**
 * Opens the stream of one session. Events arrive in index order, each once;
 * after a dropped connection the browser reconnects by itself and pollcast
 * resumes after the last index received (Last-Event-ID), so nothing is lost
 * or repeated. With `accessToken` as a function, an expired or refused token
 * is asked for again and the stream resumes after the last index
 * (`last_event_id`). The stream closes itself on `end`.
 * @param {string} baseUrl
 * @param {string} sessionId
 * @param {ConnectOptions} options
 * @returns {PollcastStream}
 */
export function connect(baseUrl, sessionId, options) {
  let closed = false;
  let lastIndex = options.fromIndex === undefined ? -1 : options.fromIndex - 1;
  const renew = renewal(options);
  /** @type {EventSource | undefined} */
  let es;

  /** @param {MessageEvent} e */
  const parse = (e) => JSON.parse(e.data);
  /** @param {PollcastError} error */
  const fail = (error) => {
    if (closed) return;
    closed = true;
    es?.close();
    options.onError?.(error);
  };

  /** @param {string | undefined} token */
  const open = (token) => {
    if (closed) return;
    // Resuming: after the last event had (the query carries it, a new EventSource cannot send the header).
    const url = streamUrl(baseUrl, sessionId, lastIndex >= 0 ? { ...options, accessToken: token, fromIndex: undefined, lastEventId: lastIndex } : { ...options, accessToken: token });
    const source = new EventSource(url, { withCredentials: Boolean(options.withCredentials) });
    es = source;
    source.onopen = () => {
      renew.opened();
      options.onOpen?.();
    };
    source.onmessage = (e) => {
      /** @type {PollcastEvent} */
      const event = parse(e);
      // The server never repeats an index; this guard keeps a callback from ever seeing one twice across renewals.
      if (event.index <= lastIndex) return;
      lastIndex = event.index;
      options.onEvent?.(event);
    };
    source.addEventListener('status', (e) => options.onStatus?.(parse(/** @type {MessageEvent} */ (e))));
    source.addEventListener('end', (e) => {
      // Close before the server's end of response makes the browser reconnect.
      closed = true;
      source.close();
      options.onEnd?.(parse(/** @type {MessageEvent} */ (e)));
    });
    source.onerror = (e) => {
      if (closed || source !== es) return;
      // `event: error` from pollcast: the stream ends after it (the token expired, the access was revoked).
      const code = serverErrorCode(e);
      if (code !== undefined) {
        source.close();
        if (code === 'token_expired' && renew.renewable) return reopen();
        return fail({ reason: code === 'token_expired' ? 'expired' : 'refused', lastIndex, error: code });
      }
      // CONNECTING: the browser retries after `retry:` ms and resumes by Last-Event-ID.
      if (source.readyState === EventSource.CONNECTING) {
        options.onReconnecting?.();
        return;
      }
      // CLOSED without `end`: an answer that was not a stream (404, 401, 403, 429, 503…);
      // EventSource does not retry those and does not expose the status.
      renew.afterRefusal(url).then((again) => (again ? reopen() : refusedWith(url, options).then((why) => fail({ reason: 'refused', lastIndex, ...why }))));
    };
  };

  const start = () => {
    tokenOf(options.accessToken).then(open, () => fail({ reason: 'refused', lastIndex, error: 'token_unavailable' }));
  };
  /** A fresh token, then the stream again from where it was. */
  const reopen = () => {
    if (closed) return;
    options.onReconnecting?.();
    start();
  };
  // A string token opens at once (the URL is known now); a function's token may take a moment.
  if (typeof options.accessToken === 'function') start();
  else open(options.accessToken);

  return {
    get lastIndex() {
      return lastIndex;
    },
    get closed() {
      return closed;
    },
    close() {
      closed = true;
      es?.close();
    },
  };
}

/**
 * The URL of one stream carrying several sessions (duplicates dropped).
 * @param {string} baseUrl where pollcast is served ('' or '/' for this page's origin)
 * @param {readonly string[]} sessionIds
 * @param {{ accessToken?: string, fromIndex?: number, includeDetails?: boolean, overview?: boolean, lastEventId?: string }} [options]
 * @returns {string}
 */
export function manyStreamUrl(baseUrl, sessionIds, options = {}) {
  const url = new URL('events', baseOf(baseUrl));
  // Session ids never hold a comma (the contract's pattern), so one compact list parameter does. A string that does
  // (no valid id) goes as a parameter of its own, for the server to refuse (400), never read as two other sessions.
  const ids = [...new Set(sessionIds)];
  if (ids.some((id) => id.includes(','))) for (const id of ids) url.searchParams.append('session', id);
  else url.searchParams.set('sessions', ids.join(','));
  if (options.overview) url.searchParams.set('mode', 'overview');
  if (options.fromIndex !== undefined) url.searchParams.set('from_index', String(options.fromIndex));
  // The cursor of every session's position (the SSE id of the last frame had), for a new EventSource resuming.
  if (options.lastEventId) url.searchParams.set('last_event_id', options.lastEventId);
  if (options.includeDetails === false) url.searchParams.set('include_details', 'false');
  if (typeof options.accessToken === 'string' && options.accessToken) url.searchParams.set('access_token', options.accessToken);
  return url.href;
}

/**
 * The JSON object of a multiplexed frame, or undefined when it is not one: a
 * frame that names no session cannot be routed, so it is dropped rather than
 * thrown at the page.
 * @param {Event} e
 * @returns {Record<string, any> | undefined}
 */
function frameObject(e) {
  try {
    const value = JSON.parse(/** @type {MessageEvent} */ (e).data);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Opens ONE stream for several sessions. Per session: its status first, every
 * event once and in index order (none in overview mode), then its `end`; each
 * callback's argument carries `session`. After a dropped connection the
 * browser reconnects by itself and pollcast resumes every session exactly
 * where it was (the SSE id is a cursor of all their positions). With
 * `accessToken` as a function, an expired or refused token is asked for again
 * and the stream resumes from that cursor (`last_event_id`). The stream
 * closes itself once every session ended. `add()` puts more sessions on it.
 * @param {string} baseUrl
 * @param {readonly string[]} sessionIds
 * @param {ConnectManyOptions} options
 * @returns {PollcastManyStream}
 */
export function connectMany(baseUrl, sessionIds, options) {
  const firstIndex = options.fromIndex === undefined ? -1 : options.fromIndex - 1;
  /** Per session, in the order given: what the callbacks have had. @type {Map<string, { lastIndex: number, ended: boolean }>} */
  const state = new Map();
  const track = (/** @type {readonly string[]} */ ids) => {
    let added = 0;
    for (const id of ids) {
      // A session whose `end` arrived is followed again from the start when asked for again (a card reopened):
      // until 7 Dec 2026 it was taken as one the stream had, and nothing came for it.
      if (state.has(id) && !state.get(id)?.ended) continue;
      state.set(id, { lastIndex: firstIndex, ended: false });
      added++;
    }
    return added;
  };
  track(sessionIds);
  let open = state.size;
  let closed = false;
  const renew = renewal(options);
  /** @type {EventSource | undefined} */
  let es;
  /** Bumped by every new connection: a token that arrives for an older one is dropped. */
  let generation = 0;

  /** @param {PollcastManyError} error */
  const fail = (error) => {
    if (closed) return;
    closed = true;
    es?.close();
    options.onError?.(error);
  };

  /**
   * @param {string[]} ids
   * @param {string} cursor
   * @param {string | undefined} token
   */
  const connectWith = (ids, cursor, token) => {
    if (closed) return;
    const url = manyStreamUrl(baseUrl, ids, { ...options, accessToken: token, lastEventId: cursor || undefined });
    const source = new EventSource(url, { withCredentials: Boolean(options.withCredentials) });
    es = source;
    // This connection's session list and the last cursor it sent (a cursor names its list).
    const at = { ids, cursor };
    // A stream replaced by add() or a renewal may still have frames queued: only the current one speaks.
    const live = () => source === es;
    /** @param {MessageEvent} e */
    const seen = (e) => {
      if (e.lastEventId) at.cursor = e.lastEventId;
    };

    source.onopen = () => {
      if (!live()) return;
      renew.opened();
      options.onOpen?.();
    };
    source.onmessage = (e) => {
      if (!live()) return;
      seen(e);
      /** @type {SessionEvent | undefined} */
      const event = /** @type {any} */ (frameObject(e));
      const s = event && state.get(event.session);
      // The server never repeats an index; this guard keeps a callback from ever seeing one twice,
      // and skips what a stream reopened by add() replays of the sessions it already had.
      if (event === undefined || s === undefined || s.ended || !Number.isInteger(event.index) || event.index <= s.lastIndex) return;
      s.lastIndex = event.index;
      options.onEvent?.(event);
    };
    source.addEventListener('status', (e) => {
      /** @type {SessionStatus | undefined} */
      const status = /** @type {any} */ (frameObject(e));
      if (live() && status && state.get(status.session)?.ended === false) options.onStatus?.(status);
    });
    source.addEventListener('end', (e) => {
      if (!live()) return;
      seen(/** @type {MessageEvent} */ (e));
      /** @type {SessionEnd | undefined} */
      const end = /** @type {any} */ (frameObject(e));
      const s = end && state.get(end.session);
      if (end === undefined || s === undefined || s.ended) return;
      s.ended = true;
      open--;
      // Close before the server's end of response makes the browser reconnect.
      if (open === 0) {
        closed = true;
        source.close();
      }
      options.onEnd?.(end);
      if (open === 0) options.onDone?.();
    });
    source.onerror = (e) => {
      if (closed || !live()) return;
      const code = serverErrorCode(e);
      if (code !== undefined) {
        source.close();
        if (code === 'token_expired' && renew.renewable) return reopen(at.ids, at.cursor);
        return fail({ reason: code === 'token_expired' ? 'expired' : 'refused', error: code });
      }
      if (source.readyState === EventSource.CONNECTING) {
        options.onReconnecting?.();
        return;
      }
      // CLOSED without every `end`: an answer that was not a stream (400, 401, 403, 404, 414, 429, 503…).
      renew.afterRefusal(url).then((again) => (again ? reopen(at.ids, at.cursor) : refusedWith(url, options).then((why) => fail({ reason: 'refused', ...why }))));
    };
  };

  /**
   * Connects for `ids` from `cursor` (none: from `fromIndex`), with the token as it is now.
   * @param {string[]} ids
   * @param {string} cursor
   */
  const connectNow = (ids, cursor) => {
    const mine = ++generation;
    if (typeof options.accessToken !== 'function') return connectWith(ids, cursor, options.accessToken);
    tokenOf(options.accessToken).then(
      (token) => {
        if (mine === generation) connectWith(ids, cursor, token);
      },
      () => fail({ reason: 'refused', error: 'token_unavailable' }),
    );
  };
  /**
   * A fresh token, then the same stream again from its cursor.
   * @param {string[]} ids
   * @param {string} cursor
   */
  const reopen = (ids, cursor) => {
    if (closed) return;
    options.onReconnecting?.();
    connectNow(ids, cursor);
  };
  // Only the sessions still open: a session whose `end` arrived is not asked for again.
  const start = () => connectNow([...state].filter(([, s]) => !s.ended).map(([id]) => id), '');
  start();

  return {
    get sessions() {
      return [...state.keys()];
    },
    lastIndex: (sessionId) => state.get(sessionId)?.lastIndex ?? -1,
    ended: (sessionId) => state.get(sessionId)?.ended ?? false,
    get closed() {
      return closed;
    },
    add(more) {
      if (closed) return false;
      const added = track(more);
      if (added === 0) return true;
      open += added;
      // The cursor names the stream's session list, so a longer list is a new stream: the sessions
      // still open are asked for again from `fromIndex`, and what they had is skipped above.
      es?.close();
      es = undefined;
      start();
      return true;
    },
    close() {
      closed = true;
      es?.close();
    },
  };
}

/**
 * Why pollcast refused a stream URL: EventSource hides the answer's status,
 * so the same URL is asked once more with fetch and its JSON read. Resolves
 * `{ status, error, code }`, or undefined when it now answers as a stream (a
 * passing refusal: the fetch is dropped at once) or cannot be reached.
 * @param {string} url
 * @param {boolean} [withCredentials] send cookies (a token in the cookie, pollcast on another origin)
 * @returns {Promise<{ status: number, error: string, code: string } | undefined>}
 */
export async function refusalOf(url, withCredentials = false) {
  const abort = new AbortController();
  try {
    const res = await fetch(url, { signal: abort.signal, cache: 'no-store', credentials: withCredentials ? 'include' : 'same-origin', headers: { accept: 'text/event-stream' } });
    if (res.ok) return undefined;
    const body = await res.json().catch(() => ({}));
    return { status: res.status, error: typeof body?.error === 'string' ? body.error : '', code: typeof body?.code === 'string' ? body.code : '' };
  } catch {
    return undefined;
  } finally {
    abort.abort();
  }
}

/**
 * The URL of the live session list (`GET /sessions/events`) with the list's
 * filters (`status` may be an array) and, for EventSource, the token and the
 * list id to resume after.
 * @param {string} baseUrl
 * @param {{ filters?: Record<string, string | readonly string[] | undefined>, accessToken?: string, lastEventId?: string }} [options]
 * @returns {string}
 */
export function sessionListUrl(baseUrl, options = {}) {
  const url = new URL(`${baseUrl.replace(/\/+$/, '')}/sessions/events`, globalThis.location?.href);
  for (const [name, value] of Object.entries(options.filters ?? {})) {
    for (const v of Array.isArray(value) ? value : [value]) if (v !== undefined && v !== '') url.searchParams.append(name, String(v));
  }
  if (typeof options.accessToken === 'string' && options.accessToken) url.searchParams.set('access_token', options.accessToken);
  if (options.lastEventId) url.searchParams.set('last_event_id', options.lastEventId);
  return url.href;
}

/**
 * Watches the session list: `onSnapshot({items, total})` first (and again
 * whenever pollcast finds a fresh snapshot cheaper than the changes missed),
 * then `onUpsert(summary)` and `onRemove({id})` as the list changes, and
 * `onTotal(total)` when the count of the filter's sessions changes;
 * `onTrouble(upstreamError | null)` when the upstream list fails or
 * recovers. Reconnects resume where they stopped (Last-Event-ID), with no
 * change repeated. The token may be a string or a function, asked again when
 * the token expires or an open is refused with 401 (as `connect` does), or a
 * cookie (`withCredentials`). A refusal (401, 403, 400…) ends it with
 * `onError({ reason: 'refused', status, error, code })`; a server-side
 * `event: error` with `onError({ reason })` (`token_expired` when the token
 * is a string, `access_revoked`).
 * @param {string} baseUrl
 * @param {{ filters?: Record<string, string | readonly string[] | undefined>,
 *   accessToken?: string | (() => string | undefined | Promise<string | undefined>), withCredentials?: boolean,
 *   onSnapshot?: (list: { items: any[], total: number }) => void, onUpsert?: (summary: any) => void,
 *   onRemove?: (removed: { id: string }) => void, onTotal?: (total: number) => void, onTrouble?: (upstreamError: string | null) => void,
 *   onOpen?: () => void, onReconnecting?: () => void, onError?: (error: any) => void }} options
 * @returns {{ readonly closed: boolean, close(): void }}
 */
export function watchSessions(baseUrl, options) {
  let closed = false;
  /** @type {EventSource | undefined} */
  let es;
  // The last list id received: a stream opened anew (a renewed token) resumes after it.
  let lastId = '';
  // The upstream trouble last said. pollcast writes a list's trouble first on every connection, and nothing when
  // there is none: a connection that opens clears it (until 7 Dec 2026 it stood after pollcast restarted on a
  // healthy list, since only a status frame cleared it).
  let trouble = /** @type {string | null} */ (null);
  const said = (/** @type {string | null} */ t) => {
    trouble = t;
    options.onTrouble?.(t);
  };
  const renew = renewal(options);
  const json = (/** @type {Event} */ e) => {
    const id = /** @type {MessageEvent} */ (e).lastEventId;
    if (id) lastId = id;
    return frameObject(e);
  };
  const stop = (/** @type {any} */ why) => {
    if (closed) return;
    closed = true;
    es?.close();
    options.onError?.(why);
  };
  const open = (/** @type {string | undefined} */ token) => {
    if (closed) return;
    const url = sessionListUrl(baseUrl, { filters: options.filters, accessToken: token, lastEventId: lastId || undefined });
    const source = new EventSource(url, { withCredentials: Boolean(options.withCredentials) });
    es = source;
    source.onopen = () => {
      renew.opened();
      if (trouble !== null) said(null);
      options.onOpen?.();
    };
    source.addEventListener('snapshot', (e) => {
      const list = json(e);
      if (list && Array.isArray(list.items)) options.onSnapshot?.({ items: list.items, total: typeof list.total === 'number' ? list.total : list.items.length });
    });
    source.addEventListener('upsert', (e) => {
      const row = json(e);
      if (row && typeof row.id === 'string') options.onUpsert?.(row);
    });
    source.addEventListener('remove', (e) => {
      const row = json(e);
      if (row && typeof row.id === 'string') options.onRemove?.({ id: row.id });
    });
    source.addEventListener('total', (e) => {
      const t = json(e);
      if (t && typeof t.total === 'number') options.onTotal?.(t.total);
    });
    source.addEventListener('status', (e) => {
      const st = frameObject(e);
      if (st) said(typeof st.upstream_error === 'string' ? st.upstream_error : null);
    });
    source.onerror = (e) => {
      if (closed || es !== source) return;
      // A server-sent `event: error` ({"error": "token_expired"}) arrives here too, with data.
      const code = serverErrorCode(e);
      if (code !== undefined) {
        source.close();
        if (code === 'token_expired' && renew.renewable) {
          options.onReconnecting?.();
          return void start();
        }
        return stop({ reason: code });
      }
      if (source.readyState === EventSource.CONNECTING) return void options.onReconnecting?.();
      source.close();
      void renew.afterRefusal(url).then((again) => {
        if (closed) return;
        if (again) {
          options.onReconnecting?.();
          return start();
        }
        void refusalOf(url, Boolean(options.withCredentials)).then((why) => stop({ reason: 'refused', ...why }));
      });
    };
  };
  const start = () => {
    tokenOf(options.accessToken).then(open, () => stop({ reason: 'refused', error: 'token_unavailable' }));
  };
  if (typeof options.accessToken === 'function') start();
  else open(options.accessToken);
  return {
    get closed() {
      return closed;
    },
    close() {
      closed = true;
      es?.close();
    },
  };
}

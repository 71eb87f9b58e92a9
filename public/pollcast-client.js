// pollcast browser client: a dependency-free ES module around EventSource for
// GET /sessions/{id}/events. Served by pollcast at /pollcast-client.js; types
// in pollcast-client.d.ts beside it.
//
//   import { connect } from '/pollcast-client.js';
//   const stream = connect('', 'demo-1', {
//     onEvent: (e) => console.log(e.index, e.type, e.data),
//     onStatus: (s) => console.log(s.status, s.metrics.steps),
//     onEnd: (end) => console.log('finished', end.status, end.answer),
//   });
//   // later: stream.close();

/**
 * @typedef {import('./pollcast-client.d.ts').PollcastEvent} PollcastEvent
 * @typedef {import('./pollcast-client.d.ts').PollcastStatus} PollcastStatus
 * @typedef {import('./pollcast-client.d.ts').PollcastEnd} PollcastEnd
 * @typedef {import('./pollcast-client.d.ts').ConnectOptions} ConnectOptions
 * @typedef {import('./pollcast-client.d.ts').PollcastStream} PollcastStream
 */

/**
 * The stream URL for a session.
 * @param {string} baseUrl where pollcast is served ('' or '/' for this page's origin)
 * @param {string} sessionId
 * @param {Pick<ConnectOptions, 'accessToken' | 'fromIndex' | 'includeDetails'>} [options]
 * @returns {string}
 */
export function streamUrl(baseUrl, sessionId, options = {}) {
  const here = typeof location === 'undefined' ? undefined : location.href;
  const base = new URL(baseUrl === '' ? '/' : baseUrl, here);
  // Keep a path prefix (pollcast mounted under /live/), whatever the trailing slash.
  if (!base.pathname.endsWith('/')) base.pathname += '/';
  const url = new URL(`sessions/${encodeURIComponent(sessionId)}/events`, base);
  if (options.fromIndex !== undefined) url.searchParams.set('from_index', String(options.fromIndex));
  if (options.includeDetails === false) url.searchParams.set('include_details', 'false');
  // EventSource cannot send headers, so the token travels in the query (pollcast never logs it).
  if (options.accessToken) url.searchParams.set('access_token', options.accessToken);
  return url.href;
}

/**
 * Opens the stream of one session. Events arrive in index order, each once;
 * after a dropped connection the browser reconnects by itself and pollcast
 * resumes after the last index received (Last-Event-ID), so nothing is lost
 * or repeated. The stream closes itself on `end`.
 * @param {string} baseUrl
 * @param {string} sessionId
 * @param {ConnectOptions} options
 * @returns {PollcastStream}
 */
export function connect(baseUrl, sessionId, options) {
  const es = new EventSource(streamUrl(baseUrl, sessionId, options));
  let closed = false;
  let lastIndex = options.fromIndex === undefined ? -1 : options.fromIndex - 1;

  /** @param {MessageEvent} e */
  const parse = (e) => JSON.parse(e.data);

  es.onopen = () => options.onOpen?.();
  es.onmessage = (e) => {
    /** @type {PollcastEvent} */
    const event = parse(e);
    lastIndex = event.index;
    options.onEvent?.(event);
  };
  es.addEventListener('status', (e) => options.onStatus?.(parse(/** @type {MessageEvent} */ (e))));
  es.addEventListener('end', (e) => {
    // Close before the server's end of response makes the browser reconnect.
    closed = true;
    es.close();
    options.onEnd?.(parse(/** @type {MessageEvent} */ (e)));
  });
  es.onerror = () => {
    if (closed) return;
    // CONNECTING: the browser retries after `retry:` ms and resumes by Last-Event-ID.
    if (es.readyState === EventSource.CONNECTING) {
      options.onReconnecting?.();
      return;
    }
    // CLOSED without `end`: an answer that was not a stream (404, 401, 403, 429, 503…);
    // EventSource does not retry those and does not expose the status.
    closed = true;
    options.onError?.({ reason: 'refused', lastIndex });
  };

  return {
    get lastIndex() {
      return lastIndex;
    },
    get closed() {
      return closed;
    },
    close() {
      closed = true;
      es.close();
    },
  };
}

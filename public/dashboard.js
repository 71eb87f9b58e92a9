// The dashboard's script (public/index.html): every session of the account, live, with cards for a few.
// Dependency-free ES module, served at /dashboard.js beside /pollcast-client.js.
//
// Where its data comes from: the session list, the status strip and the header's counts from the live
// list stream (GET /sessions/events, watchSessions); each card from one multiplexed stream of its
// sessions (GET /events, connectMany).

import { connectMany, manyStreamUrl, refusalOf, watchSessions } from '/pollcast-client.js';

/** Cards shown at once; beyond it the oldest finished cards give way to new live sessions (opened ones never do). */
const MAX_CARDS = 9;
/** Log lines kept per card; older ones leave the top of the log (the stream itself is unaffected). */
const MAX_LOG_LINES = 200;
/** How often the running time of live sessions is redrawn, in ms. */
const CLOCK_TICK_MS = 1000;
/** Longest text put in one log line or one action, in characters (the full text is in the tooltip). */
const MAX_TEXT_CHARS = 240;
/** Longest answer or error rendered, in characters: a runaway answer must not freeze the page. */
const MAX_ANSWER_CHARS = 20_000;
/** How long a new log line, figure or screenshot stays highlighted, in ms. */
const FRESH_MS = 900;
/** Image formats a screenshot may declare (`data.image_format`); anything else is taken as PNG. */
const IMAGE_TYPES = { png: 'image/png', jpeg: 'image/jpeg', jpg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif' };
/** Statuses after which a session never changes again (CONTRACT §1). */
const TERMINAL = new Set(['completed', 'failed', 'timed_out', 'interrupted']);
/** Order of the statuses in the header's summary and the status filter: the life of a session. */
const STATUS_ORDER = ['pending', 'running', 'idle', 'paused', 'completed', 'failed', 'timed_out', 'interrupted'];
/** Host names that never resolve (RFC 2606, RFC 6761): a link there is a placeholder, not a live view. */
const PLACEHOLDER_HOST = /(^|\.)(invalid|example|test|localhost)$|(^|\.)example\.(com|net|org)$/i;

const params = new URLSearchParams(location.search);
/** Sessions asked for by the address (?session=), kept on screen whatever the list says. */
const pinned = [...new Set(params.getAll('session').flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean))];
/**
 * The access token, from the address's fragment (`#token=`), which the browser never sends anywhere: not to a
 * server's access log, not in a Referer, not with a reload. One given as `?token=` is moved there at once.
 */
const fragment = new URLSearchParams(location.hash.slice(1));
const token = fragment.get('token') || params.get('token') || undefined;
if (params.has('token')) {
  params.delete('token');
  if (token) fragment.set('token', token);
  history.replaceState(null, '', addressWith(params));
}

// A fragment changed by hand (a new token pasted in) loads nothing by itself: the page starts again with it.
window.addEventListener('hashchange', () => location.reload());

/** This page's address with the query `q` and the fragment (token) kept. */
function addressWith(q) {
  return `${location.pathname}${q.size > 0 ? `?${q}` : ''}${fragment.size > 0 ? `#${fragment}` : ''}`;
}
/** The list's filters, from the address and the page's controls. */
const filters = { status: params.getAll('status').filter((s) => STATUS_ORDER.includes(s)), search: params.get('search') ?? '' };
// A status the page does not know is not applied: it leaves the address too, which would otherwise name a filter the
// page does not show (until 7 Dec 2026 `?status=bogus` stayed in the address over every status, an audit found).
if (params.getAll('status').length !== filters.status.length) {
  console.warn(`dashboard: unknown status in the address ignored: ${params.getAll('status').filter((s) => !STATUS_ORDER.includes(s)).join(', ')}`);
  params.delete('status');
  for (const s of filters.status) params.append('status', s);
  history.replaceState(null, '', addressWith(params));
}

// ───── Connection handling: the only code that knows how streams are opened. ─────

/** Sessions one stream may carry: the server's MAX_SESSIONS_PER_STREAM default (more is a 400 for the whole stream). */
const MAX_SESSIONS_PER_STREAM = 100;
/**
 * Card streams open at once over HTTP/1.1, where each holds one of the six
 * connections a browser opens per server (shared by all its tabs). Two: the
 * cards' stream and one for the sessions that started since; a later batch
 * joins the open card stream that replays least, so the cards never take a
 * connection each. With the list stream the page holds three connections.
 */
const MAX_HTTP1_CARD_STREAMS = 2;
/** HTTP/2 and HTTP/3 carry every stream on one connection: a new stream per batch costs no connection and replays nothing. */
const cardStreamLimit = /^h[23]/.test(performance.getEntriesByType('navigation')[0]?.nextHopProtocol ?? '') ? Infinity : MAX_HTTP1_CARD_STREAMS;

/** The cards' open streams: { stream (connectMany's), state: 'connecting' | 'live' | 'reconnecting' }. */
const streams = new Set();
/** The list stream and what it last said: state 'connecting' | 'live' | 'reconnecting' | 'refused'. */
const list = { watch: undefined, state: 'connecting', openedAt: 0, trouble: null, troubleSince: 0, troubleClearedAt: 0, refusal: undefined, listed: false, total: 0 };

/** Sessions of `record` whose `end` has not arrived. */
const openSessionsOf = (record) => record.stream.sessions.filter((id) => !record.stream.ended(id));
/** Events a stream has delivered for its open sessions: what add() would make it send again. */
const replayCost = (record) => openSessionsOf(record).reduce((sum, id) => sum + record.stream.lastIndex(id) + 1, 0);

/**
 * A card stream still connecting after this long is waiting for a connection, not opening (ms): longer than the
 * 10 s the list's first viewer may wait for its first poll (docs/session-list.md), which is the upstream's delay,
 * not the browser's (until 7 Dec 2026 8 s: a slow list was blamed on the six connections, an audit found).
 */
const CONNECT_WAIT_MS = 12_000;
/** A list trouble said again within this long of a reconnect clearing it is the same trouble (ms): it keeps its time. */
const TROUBLE_SAID_AGAIN_MS = 5_000;

function openCardStream(ids) {
  const record = { stream: undefined, state: 'connecting', openedAt: Date.now() };
  const each = (f) => () => {
    for (const id of openSessionsOf(record)) f(id);
  };
  const leave = () => {
    streams.delete(record);
    renderTop();
  };
  record.stream = connectMany('/', ids, {
    accessToken: token,
    onOpen: () => ((record.state = 'live'), each(cardHandlers.onOpen)(), renderTop()),
    onStatus: (status) => cardHandlers.onStatus(status.session, status),
    onEvent: (event) => cardHandlers.onEvent(event.session, event),
    onEnd: (end) => cardHandlers.onEnd(end.session, end),
    onDone: leave,
    onReconnecting: () => ((record.state = 'reconnecting'), each(cardHandlers.onReconnecting)(), renderTop()),
    onError: () => {
      const refused = openSessionsOf(record);
      leave();
      explainRefusedCards(refused);
    },
  });
  streams.add(record);
  renderTop();
}

/**
 * Puts card sessions on a stream: a new one while the budget allows (nothing
 * is sent twice), else the open card stream whose add() replays least.
 */
function subscribeCards(ids) {
  for (let i = 0; i < ids.length; i += MAX_SESSIONS_PER_STREAM) {
    const batch = ids.slice(i, i + MAX_SESSIONS_PER_STREAM);
    const open = [...streams].filter((r) => !r.stream.closed);
    const hosts = open.filter((r) => openSessionsOf(r).length + batch.length <= MAX_SESSIONS_PER_STREAM).sort((a, b) => replayCost(a) - replayCost(b));
    if (hosts.length > 0 && open.length >= cardStreamLimit) hosts[0].stream.add(batch);
    else openCardStream(batch);
  }
}

/**
 * Cards whose stream was refused: asked one by one (a stream of several says
 * only that one of them is refused), so each card says why in its own words.
 */
function explainRefusedCards(ids) {
  const accepted = [];
  let asked = ids.length;
  for (const id of ids) {
    void refusalOf(manyStreamUrl('/', [id], { accessToken: token })).then((why) => {
      // One refused session refuses a stream of several: the others, accepted alone, are followed again.
      // Once per card: a stream refused again for them is explained card by card, not retried in a loop.
      if (why === undefined && !views.get(id)?.retriedAlone) accepted.push(id);
      else if (why === undefined) withView(id, (v) => refuseCard(v, { status: 0, error: 'refused with the other sessions of its stream', code: '' }));
      else withView(id, (v) => refuseCard(v, why));
      if (--asked === 0 && accepted.length > 0) {
        const again = accepted.filter((a) => views.has(a));
        for (const a of again) views.get(a).retriedAlone = true;
        subscribeCards(again);
      }
    });
  }
}

function openList() {
  list.watch?.close();
  Object.assign(list, { state: 'connecting', refusal: undefined, listed: false, openedAt: Date.now() });
  list.watch = watchSessions('/', {
    accessToken: token,
    filters: { status: filters.status, search: filters.search || undefined },
    onOpen: () => ((list.state = 'live'), renderTop()),
    onReconnecting: () => ((list.state = 'reconnecting'), renderTop()),
    onSnapshot: ({ items, total }) => takeSnapshot(items, total),
    onUpsert: (row) => takeRow(row),
    onRemove: ({ id }) => dropRow(id),
    onTotal: (total) => ((list.total = total), renderTop()),
    onTrouble: (error) => {
      // A reconnect clears the trouble and pollcast says it again at once if it lasts: it keeps its first time then.
      if (error !== null && list.trouble === null && Date.now() - list.troubleClearedAt > TROUBLE_SAID_AGAIN_MS) list.troubleSince = Date.now();
      if (error === null && list.trouble !== null) list.troubleClearedAt = Date.now();
      list.trouble = error;
      renderTop();
    },
    onError: (why) => {
      list.state = 'refused';
      list.refusal = why;
      renderTop();
    },
  });
  renderTop();
}
// ───── End of connection handling. ─────

const root = document.getElementById('sessions');
const template = document.getElementById('card-template');
/** id → view: one card's elements and what the page knows of its session. */
const views = new Map();
/**
 * id → every listed session, for the header and the strip: { id, status,
 * steps, cost, createdAt, startedAt, finishedAt, ended, viewUrl, chip }. Fed
 * by the list stream and the cards' streams.
 */
const known = new Map();
/** The session last opened from the strip: its card stays while finished cards give way (see trim()). */
let chosen = '';
/** True while a redraw of the header, the strip and the card order waits for the next frame. */
let drawQueued = false;

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A string for display from an open-JSON value, '' for anything that is not text or a number. */
const str = (v) => (typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : '');
const clip = (s, n = MAX_TEXT_CHARS) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
/** Compact JSON of data of unknown shape, without screenshots and the simulator's timing stamp. */
function compact(v) {
  try {
    return clip(JSON.stringify(v, (k, x) => (k === 'image' || k === 'emitted_at_ms' ? undefined : x)) ?? '');
  } catch {
    return '';
  }
}
const money = (n) => (typeof n === 'number' && Number.isFinite(n) ? `$${n.toFixed(n >= 10 ? 2 : 4)}` : '–');
function clock(ms) {
  if (!Number.isFinite(ms) || ms < 0) return '–';
  const s = Math.floor(ms / 1000);
  const mm = String(Math.floor(s / 60) % 60);
  const ss = String(s % 60).padStart(2, '0');
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}
/** One formatter for every log line (toLocaleTimeString builds one per call: 1.6 s of a 6,000-event replay, an audit measured). */
const TIME_OF_DAY = new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
function timeOfDay(iso) {
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? '--:--:--' : TIME_OF_DAY.format(t);
}
/** An answer as text: strings as they are, anything else as indented JSON. */
function answerText(answer) {
  const s = typeof answer === 'string' ? answer : JSON.stringify(answer, null, 2) ?? '';
  return s.length > MAX_ANSWER_CHARS ? `${s.slice(0, MAX_ANSWER_CHARS)}…` : s;
}
function host(url) {
  try {
    return new URL(url).host;
  } catch {
    return clip(url, 60);
  }
}

/** One tool request in a few words ("click (691, 436)", "goto https://…"), whatever its shape (ours, or OpenAI-style `function`). */
function describeCall(call) {
  if (!isObject(call)) return { name: 'action', args: compact(call) };
  const fn = isObject(call.function) ? call.function : {};
  const name = str(call.name) || str(fn.name) || str(call.tool) || 'action';
  let args = call.args ?? call.arguments ?? call.input ?? fn.arguments;
  if (typeof args === 'string') {
    try {
      args = JSON.parse(args);
    } catch {
      return { name, args: clip(args) };
    }
  }
  if (!isObject(args)) return { name, args: args == null ? '' : compact(args) };
  if (typeof args.url === 'string') return { name, args: args.url };
  if (typeof args.text === 'string') return { name, args: `"${clip(args.text, 80)}"${args.submit === true ? ' ↵' : ''}` };
  if (typeof args.x === 'number' && typeof args.y === 'number') return { name, args: `(${args.x}, ${args.y})` };
  if (typeof args.direction === 'string') return { name, args: `${args.direction}${typeof args.amount === 'number' ? ` ${args.amount} px` : ''}` };
  return { name, args: compact(args) };
}
const callsOf = (d) => (Array.isArray(d.tool_calls) ? d.tool_calls.map(describeCall) : []);

/** The log line of one event: a short tag, a line of text and a tone (its colour). Reads open JSON without trusting its shape. */
function describe(event) {
  const d = isObject(event.data) ? event.data : {};
  if (event.omitted) return { tag: str(event.type) || 'event', text: 'too large to relay: shown without its data', tone: 'muted' };
  switch (event.type) {
    case 'RequestStartEvent': return { tag: 'request', text: 'task received', tone: 'muted' };
    case 'RequestStartDispatchedEvent': return { tag: 'request', text: `dispatched${d.status ? ` (${str(d.status)})` : ''}`, tone: 'muted' };
    case 'AgentStartedEvent': return { tag: 'agent', text: 'agent started', tone: 'state' };
    case 'LiveViewUrlEvent': return { tag: 'live view', text: str(d.url) ? host(str(d.url)) : compact(d), tone: 'muted' };
    case 'ActiveStateChangeEvent': return { tag: 'state', text: `→ ${str(d.state) || compact(d)}`, tone: 'state' };
    case 'MetricsUpdateEvent': {
      const m = isObject(d.metrics) ? d.metrics : d;
      return { tag: 'metrics', text: `${str(m.steps) || '?'} step${m.steps === 1 ? '' : 's'} · ${money(m.total_cost)}`, tone: 'muted' };
    }
    case 'AgentCompletionEvent': return { tag: 'finished', text: str(d.reason) || 'agent finished', tone: d.reason === 'finished' ? 'good' : 'state' };
    case 'AgentErrorEvent': return { tag: 'error', text: str(d.error) || compact(d), tone: 'bad' };
    case 'AgentEvent': break;
    default: return { tag: str(event.type) || 'event', text: compact(event.data), tone: '' };
  }
  switch (d.kind) {
    case 'policy_event': {
      const act = callsOf(d).map((c) => `${c.name} ${c.args}`.trim()).join(' · ');
      return { tag: 'thought', text: [act, str(d.thought)].filter(Boolean).join(' — ') || compact(d), tone: 'think' };
    }
    case 'tool_result': return { tag: 'result', text: `${d.ok === false ? '✕' : '✓'} ${str(d.output) || str(d.name) || compact(d)}`, tone: d.ok === false ? 'bad' : 'act' };
    case 'observation_event': return { tag: 'screen', text: [str(d.title), str(d.url)].filter(Boolean).join(' · ') || 'observation', tone: 'screen' };
    case 'message_event': return { tag: 'message', text: `${str(d.role) || 'agent'}: ${str(d.message) || str(d.content) || compact(d)}`, tone: 'message' };
    case 'answer_event': return { tag: 'answer', text: clip(answerText(d.answer)), tone: 'good' };
    case 'error_event': return { tag: 'error', text: str(d.error) || compact(d), tone: 'bad' };
    default: return { tag: str(d.kind) || 'agent', text: compact(d), tone: '' };
  }
}

/**
 * The src of a screenshot: base64 in `data.image` (or already a data:image URL);
 * undefined when there is none, null when it is there but not base64 (the browser
 * would refuse such a data: URL with a console error rather than an image error).
 * A web address is not loaded: event data must not make the page fetch from anywhere
 * (until 7 Dec 2026 it did, an audit found; the page's CSP allows data: images only).
 */
function imageSource(d) {
  const image = d.image;
  if (image === undefined || image === null || image === '') return undefined;
  if (typeof image !== 'string') return null;
  if (/^data:image\//i.test(image)) return image;
  if (!/^[A-Za-z0-9+/_-]+={0,2}\s*$/.test(image)) return null;
  const type = IMAGE_TYPES[str(d.image_format).toLowerCase()] ?? IMAGE_TYPES.png;
  return `data:${type};base64,${image}`;
}

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function flash(node) {
  node.classList.add('fresh');
  setTimeout(() => node.classList.remove('fresh'), FRESH_MS);
}

function setFigure(v, name, text) {
  const dd = v.$[name];
  if (dd.textContent === text) return;
  dd.textContent = text;
  dd.classList.add('bump');
  setTimeout(() => dd.classList.remove('bump'), 60);
}

function setStream(v, state, text) {
  v.stream = state;
  v.card.dataset.stream = state;
  v.$.conn.textContent = text;
  renderTop();
}

function setStatus(v, status) {
  if (!status || v.card.dataset.status === status) return;
  v.card.dataset.status = status;
  v.$.badge.textContent = status.replaceAll('_', ' ');
  v.card.classList.toggle('over', TERMINAL.has(status));
  renderTop();
}

function setMetrics(v, m) {
  if (!isObject(m)) return;
  v.cost = typeof m.total_cost === 'number' ? m.total_cost : v.cost;
  if (str(m.steps)) setFigure(v, 'steps', str(m.steps));
  setFigure(v, 'cost', money(v.cost));
  renderTop();
}

function setTimes(v, s) {
  if (typeof s.started_at === 'string') v.startedMs = Date.parse(s.started_at);
  if (typeof s.finished_at === 'string') v.finishedMs = Date.parse(s.finished_at);
  tick(v);
}

function tick(v) {
  if (!Number.isFinite(v.startedMs)) return;
  const until = Number.isFinite(v.finishedMs) ? v.finishedMs : Date.now();
  v.$.time.textContent = clock(until - v.startedMs);
}

function showPolicy(v, d) {
  const thought = str(d.thought);
  v.$.thought.textContent = thought || 'no thought given for this step';
  v.$.thought.title = thought;
  v.$.thought.classList.toggle('empty', !thought);
  v.$.step.textContent = str(d.step) ? `step ${str(d.step)} · thought` : 'thought';
  v.$.model.textContent = str(d.model);
  const calls = callsOf(d);
  v.callIds = new Set((Array.isArray(d.tool_calls) ? d.tool_calls : []).map((c) => isObject(c) && str(c.id)).filter(Boolean));
  v.$.action.replaceChildren();
  if (calls.length > 0) {
    const [first] = calls;
    const args = el('span', 'args', calls.length > 1 ? `${first.args} (+${calls.length - 1} more)` : first.args);
    args.title = calls.map((c) => `${c.name} ${c.args}`).join('\n');
    v.$.action.append(el('span', 'tool', first.name), args, el('span', 'result', ''));
  }
  v.$.message.textContent = ''; // an older message no longer describes what the agent is doing
}

function showResult(v, d) {
  // A late result of an earlier step's call must not be shown against the current action.
  if (v.callIds.size > 0 && str(d.tool_call_id) && !v.callIds.has(str(d.tool_call_id))) return;
  const result = v.$.action.querySelector('.result');
  if (!result) return;
  const failed = d.ok === false;
  result.className = `result ${failed ? 'bad' : 'ok'}`;
  result.textContent = `${failed ? '✕' : '✓'} ${str(d.output) || (failed ? 'failed' : 'done')}`;
  result.title = str(d.output);
}

function showObservation(v, d, index) {
  const url = str(d.url);
  const title = str(d.title);
  if (url || title) {
    // The scheme is noise at this size; the tooltip keeps the full address.
    v.$.url.textContent = url.replace(/^https?:\/\//i, '') || '–';
    v.$.url.title = url;
    v.$.title.textContent = title;
    v.$.title.title = title;
  }
  const src = imageSource(d);
  if (src === undefined) return;
  // Replaying a long history brings many screenshots at once: only the latest is decoded, once per frame.
  const first = v.pendingShot === undefined;
  v.pendingShot = { src, index, step: str(d.step) };
  if (first) requestAnimationFrame(() => paintShot(v));
}

function paintShot(v) {
  const shot = v.pendingShot;
  v.pendingShot = undefined;
  if (!shot || !views.has(v.id)) return;
  if (shot.src === null) return unreadableShot(v);
  v.$.img.src = shot.src;
  v.$.viewport.dataset.index = String(shot.index);
  v.$.stepTag.textContent = shot.step ? `step ${shot.step}` : '';
  v.$.placeholder.hidden = true;
  flash(v.$.screen);
}

function unreadableShot(v) {
  v.$.img.removeAttribute('src');
  v.$.placeholder.hidden = false;
  v.$.placeholder.textContent = 'this screenshot could not be decoded';
}

function showLiveView(v, d) {
  const url = str(d.url);
  // Only web links (a `javascript:` URL from the data must never become clickable), and only to a host that can exist.
  if (!realLink(url)) return;
  v.$.liveview.href = url;
  v.$.liveview.hidden = false;
}

/** Updates the card's latest-step panels from one event. */
function absorb(v, event) {
  const d = isObject(event.data) ? event.data : {};
  if (event.type === 'LiveViewUrlEvent') return showLiveView(v, d);
  if (event.type !== 'AgentEvent') return;
  switch (d.kind) {
    case 'policy_event': return showPolicy(v, d);
    case 'tool_result': return showResult(v, d);
    case 'observation_event': return showObservation(v, d, event.index);
    case 'message_event': {
      const message = str(d.message) || str(d.content);
      v.$.message.textContent = message ? `${d.role === 'user' ? 'user' : 'agent'}: ${message}` : '';
      v.$.message.title = message;
      return;
    }
    case 'answer_event': v.answerFromEvent = d.answer; return;
  }
}

/** The log line of one event (not yet in the page). */
function logLine(v, event) {
  let { tag, text, tone } = describe(event);
  // An agent's failure comes as its error step and then as the run's error event, with the same words: the words once.
  const repeated = tone === 'bad' && text === v.lastLogText;
  v.lastLogText = text;
  if (repeated) text = 'the run stopped on the error above';
  const li = el('li', `t-${tone}`);
  li.dataset.index = String(event.index);
  const line = el('span', 'text', clip(text));
  line.title = text;
  li.append(el('span', 'idx', `#${event.index}`), el('span', 'time', timeOfDay(event.timestamp)), el('span', 'tag', tag), line);
  return li;
}

/**
 * Queues an event's log line; the lines of a frame go into the page at once (one layout, one scroll), and only the
 * last MAX_LOG_LINES of them are built. Until 7 Dec 2026 each line was appended and scrolled on its own, and a
 * 6,000-event replay blocked the page for 16 s in long tasks of 2 s (an audit): it took the stream as slow.
 */
function queueLogLine(v, event) {
  v.pendingLines.push(event);
  if (v.pendingLines.length > MAX_LOG_LINES) v.pendingLines.splice(0, v.pendingLines.length - MAX_LOG_LINES);
  logFlush.cards.add(v);
  if (logFlush.timer !== undefined) return;
  // A frame, or a quarter of a second where frames are not drawn (a hidden tab): whichever comes first.
  logFlush.frame = requestAnimationFrame(flushLogLines);
  logFlush.timer = setTimeout(flushLogLines, 250);
}

/** The cards with log lines queued, flushed together (see flushLogLines). */
const logFlush = { cards: new Set(), frame: 0, timer: undefined };

/**
 * Every queued card's lines, in three passes: where each log is scrolled (reads), the lines (writes), the scrolls.
 * Until 7 Dec 2026 each card flushed on its own, reading its scroll after the card before it wrote: a layout per card
 * per frame (an audit: 1.15 s of 15 s in this function under nine busy cards).
 */
function flushLogLines() {
  cancelAnimationFrame(logFlush.frame);
  clearTimeout(logFlush.timer);
  logFlush.timer = undefined;
  // A card removed meanwhile has nothing to show.
  const cards = [...logFlush.cards].filter((v) => views.get(v.id) === v && v.pendingLines.length > 0);
  logFlush.cards.clear();
  const atBottom = cards.map(({ $: { log } }) => log.scrollTop + log.clientHeight >= log.scrollHeight - 4);
  for (const v of cards) appendLogLines(v);
  cards.forEach((v, i) => {
    if (atBottom[i]) v.$.log.scrollTop = v.$.log.scrollHeight;
  });
}

function appendLogLines(v) {
  const events = v.pendingLines;
  v.pendingLines = [];
  const log = v.$.log;
  const lines = [];
  for (const event of events) {
    try {
      lines.push(logLine(v, event));
    } catch (err) {
      console.warn(`dashboard: event #${event.index} of ${v.id} could not be shown`, err);
    }
  }
  log.append(...lines);
  for (const li of lines) flash(li);
  for (let extra = log.children.length - MAX_LOG_LINES; extra > 0; extra--) log.firstElementChild.remove();
  setFigure(v, 'count', String(v.lastIndex + 1));
}

function showOutcome(v, end) {
  const box = v.$.outcome;
  box.replaceChildren();
  const answer = end.answer ?? v.answerFromEvent;
  const status = str(end.status);
  if (answer != null && answer !== '') {
    box.append(el('h3', '', status === 'completed' ? 'answer' : 'partial answer'), el(typeof answer === 'string' ? 'p' : 'pre', 'answer', answerText(answer)));
  }
  const error = str(end.error) || str(end.upstream_error);
  if (error) box.append(el('h3', '', end.upstream_error ? 'no longer followed' : status.replaceAll('_', ' ') || 'error'), el('p', 'error', answerText(error)));
  else if (!box.hasChildNodes() && TERMINAL.has(status)) box.append(el('h3', '', status.replaceAll('_', ' ')), el('p', 'answer', 'no answer given'));
}


/** Handlers of the cards' streams, per session id; a card removed meanwhile ignores what is still in flight. */
const cardHandlers = {
  // Accepted on a stream again: a later refusal of its stream may retry it alone once more.
  onOpen: (id) => withView(id, (v) => ((v.retriedAlone = false), setStream(v, 'live', 'live'))),
  onStatus: (id, s) => {
    know(id, s);
    withView(id, (v) => {
      if (!isObject(s)) return;
      setStatus(v, str(s.status));
      setMetrics(v, s.metrics);
      setTimes(v, s);
      // upstream_error comes and goes with pollcast's retries; the stream stays open meanwhile, and what it shows is the last known.
      // A session the API no longer finds (deleted?) is said on its card, not as trouble of the agent API.
      v.missing = MISSING.test(str(s.upstream_error));
      setStale(v, s.upstream_error ? upstreamTrouble(str(s.upstream_error)) : '');
    });
  },
  onEvent: (id, event) => withView(id, (v) => {
    if (!isObject(event) || !Number.isInteger(event.index)) return;
    // The stream promises each index once; counted rather than trusted, so a repeat would show in data-duplicates.
    if (event.index <= v.lastIndex) {
      v.card.dataset.duplicates = String(Number(v.card.dataset.duplicates) + 1);
      return;
    }
    v.lastIndex = event.index;
    // Open JSON: whatever one event holds, the stream and the other cards go on.
    try {
      absorb(v, event);
    } catch (err) {
      console.warn(`dashboard: event #${event.index} of ${id} could not be shown`, err);
    }
    queueLogLine(v, event);
  }),
  onEnd: (id, end) => {
    const e = isObject(end) ? end : {};
    // No longer followed (the API kept refusing it) while it was not over: its last status is not what it is now.
    const lost = str(e.upstream_error) !== '' && !TERMINAL.has(str(e.status));
    const status = lost ? (MISSING.test(str(e.upstream_error)) ? 'not_found' : 'unknown') : str(e.status);
    know(id, { ...e, status }, true);
    withView(id, (v) => {
      setStatus(v, status);
      setMetrics(v, e.metrics);
      setTimes(v, e);
      showOutcome(v, e);
      setStale(v, '');
      setStream(v, 'ended', e.upstream_error ? 'no longer followed: the agent API kept refusing it' : 'finished');
      trim();
    });
    giveLiveRoom();
  },
  onReconnecting: (id) => withView(id, (v) => {
    v.card.dataset.reconnects = String(Number(v.card.dataset.reconnects) + 1);
    setStream(v, 'reconnecting', 'connection lost, reconnecting…');
    setStale(v, 'connection lost, reconnecting');
  }),
};

/** What a refused card says, in words a person can act on: a bad id, an unknown session, a token. */
function refusalText(why, what) {
  if (!why) return `${what} could not be opened; try reloading the page`;
  // Ended by the server's `event: error` (no HTTP status): the key was refused after the stream opened.
  if (why.reason === 'access_revoked') return 'the agent API no longer accepts your key (access revoked): reload with a valid one';
  if (why.reason === 'token_expired') return tokenProblem('expired');
  // The list's query is its filters; a session's is its id.
  if (why.status === 400 && what === 'the session list') return `the filter was refused${why.error ? `: ${why.error}` : ''}; change it in the filter form`;
  if (why.status === 400) return `not a valid session id${why.error ? `: ${why.error.replace(/^invalid session id:\s*/i, '')}` : ''}`;
  if (why.status === 404) return 'no such session: the agent API does not know this id (or this key may not see it)';
  if (why.status === 401) return tokenProblem(why.error);
  if (why.status === 403) return `your access token does not allow this${why.error ? ` (${why.error})` : ''}`;
  if (why.status === 429) return 'too many requests for now: reload in a little while';
  if (why.status === 502) return 'pollcast\'s own key was refused by the agent API (an operator must fix it)';
  // (Status 0: no HTTP status of its own, a card refused with the other sessions of its stream.)
  const detail = [why.status || undefined, why.error ?? (why.reason !== 'refused' ? why.reason : undefined)].filter((x) => x !== undefined && x !== '').join(': ');
  return `${what} was refused${detail ? ` (${detail})` : ''}`;
}

/** The expiry of the page's token (ms), read from its payload; NaN when it has none or is not a JWT. */
function tokenExpiryMs() {
  try {
    const payload = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return typeof payload.exp === 'number' ? payload.exp * 1000 : NaN;
  } catch {
    return NaN;
  }
}

/** The pill's words for a refused token: needed, expired, or not accepted. */
function tokenShort(error = '') {
  if (!token) return 'token needed';
  return /expired/i.test(error) || tokenExpiryMs() <= Date.now() ? 'token expired' : 'token not accepted';
}

function tokenProblem(error = '') {
  if (!token) return 'this dashboard needs an access token: add #token=<your token> to the address';
  const exp = tokenExpiryMs();
  if (/expired/i.test(error) || exp <= Date.now()) return `your access token expired${Number.isFinite(exp) ? ` at ${new Date(exp).toLocaleTimeString([], { hour12: false })}` : ''}: get a new one and reload with it`;
  return `your access token was not accepted (${error || 'invalid'})`;
}

function refuseCard(v, why) {
  v.refused = true;
  v.refusal = why;
  // A refused card shows no session: it is not one whose figures are stale (nor a sign of upstream trouble).
  v.staleSince = 0;
  v.card.removeAttribute('data-stale');
  // A refused id is not a session: it leaves the header's counts (the card stays, saying why).
  if (!list.rows.has(v.id)) known.delete(v.id);
  v.card.dataset.refusal = why?.status === 400 ? 'bad-id' : why?.status === 404 ? 'unknown' : why?.status === 401 || why?.status === 403 ? 'token' : 'other';
  setStream(v, 'refused', refusalText(why, 'this session'));
  v.$.badge.textContent = why?.status === 400 ? 'bad id' : why?.status === 404 ? 'not found' : 'no access';
  // A refused card is no live one: its place may go to a live session waiting in the strip.
  giveLiveRoom();
}

/** Marks what a card shows as the last known (`reason`), or live again (''). */
function setStale(v, reason) {
  const stale = reason !== '';
  if (stale && v.staleSince === 0) v.staleSince = Date.now();
  if (!stale) v.staleSince = 0;
  v.card.toggleAttribute('data-stale', stale);
  v.$.conn.classList.toggle('trouble', stale);
  if (stale) {
    v.$.conn.textContent = `${reason} · shown as of ${new Date(v.staleSince).toLocaleTimeString([], { hour12: false })}`;
    v.$.viewport.dataset.staleText = `last known · ${new Date(v.staleSince).toLocaleTimeString([], { hour12: false })}`;
  } else if (v.stream === 'live') v.$.conn.textContent = 'live';
  renderTop();
}

function withView(id, f) {
  const v = views.get(id);
  if (v) f(v);
}

/**
 * Records what `s` (a list row, a status or an end) says of session `id` for
 * the header and the strip. An end is final: a status still in flight on
 * another stream must not undo it.
 */
function know(id, s, final = false) {
  let k = known.get(id);
  if (!k) known.set(id, (k = { id, status: '', steps: '', cost: undefined, createdAt: '', startedAt: '', finishedAt: '', ended: false, viewUrl: '', chip: undefined }));
  if (!isObject(s) || (k.ended && !final)) return;
  if (str(s.status)) k.status = str(s.status);
  if (isObject(s.metrics)) {
    if (str(s.metrics.steps)) k.steps = str(s.metrics.steps);
    if (typeof s.metrics.total_cost === 'number' && Number.isFinite(s.metrics.total_cost)) k.cost = s.metrics.total_cost;
  }
  if (typeof s.created_at === 'string') k.createdAt = s.created_at;
  if (typeof s.started_at === 'string') k.startedAt = s.started_at;
  if (typeof s.finished_at === 'string') k.finishedAt = s.finished_at;
  if (typeof s.agent_view_url === 'string' && realLink(s.agent_view_url)) k.viewUrl = s.agent_view_url;
  if (final || TERMINAL.has(k.status)) k.ended = true;
  if (k.viewUrl) withView(id, (v) => showLiveView(v, { url: k.viewUrl }));
  renderTop();
}

/** True for a web link to a host that can exist (the simulator's live views point at reserved names). */
function realLink(url) {
  try {
    const u = new URL(url);
    return /^https?:$/.test(u.protocol) && !PLACEHOLDER_HOST.test(u.hostname);
  } catch {
    return false;
  }
}

/** Live sessions first (newest first), then the most recently finished: the strip's order, and the cards'. */
function orderKey(k) {
  const live = !k.ended && !TERMINAL.has(k.status);
  return live ? `1${k.startedAt || k.createdAt || '9'}` : `0${k.finishedAt || k.createdAt}`;
}
const byOrder = (a, b) => orderKey(b).localeCompare(orderKey(a));

// ───── The list: snapshot, upsert, remove. ─────
list.rows = new Set();

function takeSnapshot(items, total) {
  const first = !list.listed;
  list.listed = true;
  list.total = total;
  const rows = items.filter((s) => isObject(s) && typeof s.id === 'string');
  list.rows = new Set(rows.map((s) => s.id));
  // A session the list no longer has leaves the strip, unless it has a card.
  for (const id of [...known.keys()]) if (!list.rows.has(id) && !views.has(id)) known.delete(id);
  for (const s of rows) know(s.id, s);
  if (first && pinned.length === 0) watch([...known.values()].sort(byOrder).slice(0, MAX_CARDS).map((k) => k.id));
  // A later snapshot replaces the list (a long outage, a pollcast restart): a live session it brings with no card
  // gets one, as a session that starts while the page is open does; finished cards give way.
  else giveLiveRoom();
  renderTop();
}

/**
 * Live sessions of the list without a card get one, newest first, up to MAX_CARDS live cards in all (finished cards
 * give way, live ones do not): after a later snapshot, and whenever a card's session ends. Until 7 Dec 2026 a card
 * ending made no room: after a pollcast restart the old cards, still reconnecting when the snapshot came, ended one by
 * one and the sessions that had started meanwhile never got a card (a dashboard audit).
 */
function giveLiveRoom() {
  if (pinned.length > 0 || !list.listed) return;
  const live = [...list.rows].filter((id) => !views.has(id)).map((id) => known.get(id)).filter((k) => k !== undefined && !k.ended && !TERMINAL.has(k.status)).sort(byOrder).slice(0, liveCardRoom()).map((k) => k.id);
  if (live.length > 0) {
    watch(live);
    trim();
  }
}

/** How many more live cards fit under MAX_CARDS (finished cards give way to them, live ones do not). */
function liveCardRoom() {
  return Math.max(0, MAX_CARDS - [...views.values()].filter((v) => v.stream !== 'ended' && v.stream !== 'refused').length);
}

function takeRow(s) {
  const fresh = !known.has(s.id);
  list.rows.add(s.id);
  if (fresh) list.total++;
  know(s.id, s);
  // A session that starts while the page is open gets a card while fewer than MAX_CARDS live ones show (else it
  // waits in the strip, a click away): 200 sessions started at once made 200 cards.
  if (fresh && pinned.length === 0 && !TERMINAL.has(str(s.status)) && liveCardRoom() > 0) {
    watch([s.id]);
    trim();
  }
}

function dropRow(id) {
  if (list.rows.delete(id)) list.total = Math.max(0, list.total - 1);
  if (!views.has(id)) known.delete(id);
  renderTop();
}

function addCard(id) {
  const card = template.content.firstElementChild.cloneNode(true);
  card.dataset.session = id;
  const q = (sel) => card.querySelector(sel);
  const $ = {
    badge: q('.badge-text'), liveview: q('.liveview'), screen: q('.screen'), title: q('.bar .title'), url: q('.bar .url'),
    viewport: q('.viewport'), img: q('.viewport img'), placeholder: q('.placeholder'), stepTag: q('.step-tag'),
    step: q('.mind-head .step'), model: q('.mind-head .model'), thought: q('.thought'), action: q('.action'), message: q('.message'),
    steps: q('.steps'), cost: q('.cost'), count: q('.count'), time: q('.time'), outcome: q('.outcome'), log: q('.log'), conn: q('.conn'),
  };
  q('h2').textContent = id;
  q('h2').title = id;
  $.img.addEventListener('error', () => unreadableShot(v));
  root.append(card);
  const v = { id, card, $, stream: 'connecting', lastIndex: -1, cost: 0, startedMs: NaN, finishedMs: NaN, callIds: new Set(), answerFromEvent: undefined, pendingShot: undefined, staleSince: 0, refused: false, missing: false, lastLogText: '', pendingLines: [] };
  views.set(id, v);
  if (pinned.length > 0) know(id);
  const k = known.get(id);
  if (k?.viewUrl) showLiveView(v, { url: k.viewUrl });
  return v;
}

/** Cards for `ids`, streamed together (see subscribeCards()). */
function watch(ids) {
  const fresh = ids.filter((id) => !views.has(id));
  if (fresh.length === 0) return;
  for (const id of fresh) addCard(id);
  subscribeCards(fresh);
  renderTop();
}

/** Redraws the header, the banner, the strip and the card order once per frame, however many updates arrived in it. */
function renderTop() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    drawPill();
    drawBanner();
    drawSummary();
    drawStrip();
    orderCards();
  });
}

/** An upstream_error that says the API no longer finds the session (404): not an API that does not answer. */
/** pollcast's words for a session the API answers 404 for ("session not found upstream (404)"); not "host not found". */
const MISSING = /\(404\)/;
/** An upstream_error that says the API limits pollcast's calls (429): it answers, with a wait. */
const RATE_LIMITED = /\(429\)|rate limit/i;

/** A card's upstream_error for a person: a session the API no longer finds is not an API that does not answer. */
function upstreamTrouble(error) {
  if (MISSING.test(error)) return 'the agent API no longer finds this session (404: deleted?); pollcast asks again for a while';
  if (RATE_LIMITED.test(error)) return 'the agent API asks pollcast to slow down (rate limit, 429); retrying when it says';
  return `the agent API is not answering (${plainError(error)}); retrying`;
}

function plainError(error) {
  const e = String(error).replace(/^list:\s*/, '');
  if (/ECONNREFUSED/.test(e)) return 'connection refused';
  if (/ENOTFOUND|EAI_AGAIN/.test(e)) return 'its address does not resolve';
  if (/ECONNRESET|UND_ERR_SOCKET|socket/i.test(e)) return 'connection dropped';
  if (/TIMEOUT|no answer within/i.test(e)) return 'no answer in time';
  const http = /HTTP (\d{3})/.exec(e);
  if (http) return `it answers with error ${http[1]}`;
  return e;
}

const RECONNECTING = { tone: 'warn', short: 'reconnecting…', long: 'The connection to pollcast was lost; reconnecting. What is shown is the last known.' };

/** The one problem the page has now, worded for a person, or undefined: the eye goes to the pill and the banner. */
function problem() {
  if (list.state === 'refused') {
    const why = list.refusal;
    if (why?.reason === 'token_expired') return { tone: 'bad', short: 'token expired', long: tokenProblem('expired') };
    if (why?.reason === 'access_revoked') return { tone: 'bad', short: 'key revoked', long: refusalText(why, 'the session list') };
    if (why?.status === 401) return { tone: 'bad', short: tokenShort(why.error), long: tokenProblem(why.error) };
    return { tone: 'bad', short: 'session list unavailable', long: refusalText(why, 'the session list') };
  }
  // The list's connection lost: the trouble it said last is not known to last (pollcast itself may be what is gone).
  if (list.state === 'reconnecting') return RECONNECTING;
  if (list.trouble !== null) {
    const since = new Date(list.troubleSince).toLocaleTimeString([], { hour12: false });
    // (A first list read that fails has shown nothing yet: no "last known" below.)
    const shown = list.listed ? ` Statuses below are the last known, from ${since};` : '';
    if (RATE_LIMITED.test(list.trouble)) return { tone: 'bad', short: 'agent API rate limit', long: `The agent API asks pollcast to slow down (rate limit, 429).${shown} pollcast asks again when it says.` };
    return { tone: 'bad', short: 'agent API not answering', long: `The agent API is not answering (${plainError(list.trouble)}).${shown} pollcast keeps retrying.` };
  }
  const cards = [...views.values()];
  const tokenRefused = cards.find((v) => v.refusal?.status === 401);
  if (tokenRefused) return { tone: 'bad', short: tokenShort(tokenRefused.refusal.error), long: tokenProblem(tokenRefused.refusal.error) };
  if (cards.length > 0 && cards.every((v) => v.refused)) return { tone: 'bad', short: 'nothing to show', long: cards.length === 1 ? refusalText(cards[0].refusal, 'this session') : list.watch ? 'None of the listed sessions can be shown: each card says why.' : 'None of the sessions in the address can be shown: each card says why.' };
  const stale = cards.filter((v) => v.staleSince > 0 && v.stream !== 'ended' && !v.missing);
  if ([...streams].some((r) => r.state === 'reconnecting')) return RECONNECTING;
  // Over HTTP/1.1 a browser opens six connections per server, shared by all its tabs: a stream past them waits.
  const waiting = [...streams, ...(list.watch ? [list] : [])].filter((r) => r.state === 'connecting' && Date.now() - r.openedAt > CONNECT_WAIT_MS);
  if (waiting.length > 0) return { tone: 'warn', short: 'waiting for a connection', long: 'This page is still waiting for a connection to pollcast: the browser allows six per server over HTTP/1.1, shared by its tabs. Close another tab of this dashboard, or serve pollcast over HTTP/2.' };
  if (stale.length > 0) return { tone: 'warn', short: 'agent API trouble', long: `The agent API fails for ${stale.length === 1 ? 'one session' : `${stale.length} sessions`}; ${stale.length === 1 ? 'its card says why and shows' : 'their cards say why and show'} the last known, and pollcast keeps retrying.` };
  return undefined;
}

function drawPill() {
  const pill = document.getElementById('conn');
  const text = document.getElementById('conn-text');
  const p = problem();
  const cards = [...views.values()];
  // The streams the page holds: its card streams and the list's.
  pill.dataset.streams = String(streams.size + (list.watch && !list.watch.closed ? 1 : 0));
  document.body.toggleAttribute('data-trouble', p?.tone === 'bad');
  // The strip's statuses are the last known while the agent API is in trouble, and while the list's own stream to
  // pollcast reconnects (until 6 Dec 2026 only the former marked them).
  document.body.toggleAttribute('data-list-stale', p?.tone === 'bad' || list.state === 'reconnecting');
  const live = list.watch ? list.state === 'live' && list.listed : cards.some((v) => v.stream === 'live' || v.stream === 'ended') && cards.every((v) => v.stream !== 'connecting');
  if (p) [pill.dataset.state, text.textContent] = [p.tone === 'bad' ? 'trouble' : 'reconnecting', p.short];
  else if (live) [pill.dataset.state, text.textContent] = ['live', 'live'];
  else [pill.dataset.state, text.textContent] = ['connecting', 'connecting…'];
  pill.title = p ? p.long : '';
}

function drawBanner() {
  const note = document.getElementById('note');
  const p = problem();
  note.hidden = p === undefined;
  note.dataset.tone = p?.tone ?? '';
  if (p) setText(note, p.long.charAt(0).toUpperCase() + p.long.slice(1));
}

/** The header's counts by status and total cost, over every listed session (and the cards'). */
function drawSummary() {
  // Watching a list, the header counts the list's sessions (its filter), not cards opened outside it.
  const all = [...known.values()].filter((k) => !list.watch || list.rows.has(k.id));
  const byStatus = new Map();
  for (const k of all) if (k.status) byStatus.set(k.status, (byStatus.get(k.status) ?? 0) + 1);
  const rank = (s) => (STATUS_ORDER.includes(s) ? STATUS_ORDER.indexOf(s) : STATUS_ORDER.length);
  const item = (n, label, status) => {
    const span = el('span', status ? 'swatch' : undefined);
    if (status) span.dataset.status = status;
    span.append(el('b', '', String(n)), ` ${label}`);
    return span;
  };
  const count = Math.max(all.length, list.total);
  const costed = all.filter((k) => k.cost !== undefined);
  // Nothing to count before the list came (or when it was refused): no "0 sessions" that is not true.
  document.getElementById('summary').hidden = list.watch ? !list.listed : all.length === 0 && views.size === 0;
  document.getElementById('summary').replaceChildren(
    item(count, count === 1 ? 'session' : 'sessions'),
    // More sessions than the list reads (SESSION_LIST_MAX_SESSIONS): the counts by status are of those read.
    ...(count > all.length ? [el('span', 'of-read', `of the ${all.length} latest:`)] : []),
    ...[...byStatus].sort(([a], [b]) => rank(a) - rank(b)).map(([s, n]) => item(n, s.replaceAll('_', ' '), s)),
    // Costs are known only for sessions a loop follows (cards, recent ones): the sum says whose it is.
    item(money(costed.reduce((sum, k) => sum + k.cost, 0)), costed.length < count ? `spent by the ${costed.length} with figures` : 'spent'),
  );
}

/** A link that opens the session alone (with the page's token, if any, in the fragment). */
function sessionHref(id) {
  return `?${new URLSearchParams({ session: id })}${token ? `#${new URLSearchParams({ token })}` : ''}`;
}

function makeChip(k) {
  const chip = el('a', 'chip');
  chip.dataset.session = k.id;
  chip.href = sessionHref(k.id);
  const badge = el('span', 'badge');
  badge.append(el('span', 'icon'), el('span', 'badge-text', '…'));
  chip.append(el('span', 'chip-id', k.id), badge, el('span', 'chip-steps'), el('span', 'chip-cost'));
  chip.title = `${k.id}: click to follow it on a card`;
  return chip;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** The strip: every listed session, live ones first (newest first), then the most recently finished. */
function drawStrip() {
  // Sessions opened by the address: the strip shows them (the page reads no list then).
  const all = [...known.values()].filter((k) => pinned.length > 0 || list.rows.has(k.id)).sort(byOrder);
  // A refused list keeps its filter form in view: a filter the server refused is changed there.
  document.getElementById('overview').hidden = pinned.length > 0 ? all.length === 0 : !list.listed && list.state !== 'refused';
  document.getElementById('filters').hidden = pinned.length > 0;
  // A list refused before it was read counted nothing: no "0".
  document.getElementById('overview-count').textContent = pinned.length === 0 && !list.listed ? '' : list.total > all.length ? `${all.length} of ${list.total}` : String(all.length);
  document.getElementById('empty').hidden = !list.listed || all.length > 0;
  for (const k of all) {
    k.chip ??= makeChip(k);
    const { chip } = k;
    if (chip.dataset.status !== k.status) chip.dataset.status = k.status;
    // A finished session's status is final: never shown as doubtful.
    chip.toggleAttribute('data-final', TERMINAL.has(k.status));
    setText(chip.querySelector('.badge-text'), k.status ? k.status.replaceAll('_', ' ') : '…');
    setText(chip.querySelector('.chip-steps'), k.steps === '' ? '' : `${k.steps} step${k.steps === '1' ? '' : 's'}`);
    setText(chip.querySelector('.chip-cost'), k.cost === undefined ? '' : money(k.cost));
    chip.classList.toggle('on-screen', views.has(k.id));
  }
  const strip = document.getElementById('strip');
  const chips = all.map((k) => k.chip);
  // Only when the order changed: re-inserting every chip would restart their animations.
  if (chips.length !== strip.children.length || chips.some((c, i) => strip.children[i] !== c)) strip.replaceChildren(...chips);
}

/** The cards in the strip's order (opened ones by the address keep the address's order). */
function orderCards() {
  const cards = [...views.values()];
  const rank = (v) => known.get(v.id) ?? { id: v.id, status: '', ended: true, finishedAt: '', createdAt: '' };
  if (pinned.length === 0) cards.sort((a, b) => byOrder(rank(a), rank(b)));
  const nodes = cards.map((v) => v.card);
  if (nodes.some((n, i) => root.children[i] !== n)) root.replaceChildren(...nodes);
}

/**
 * Drops the oldest finished cards beyond MAX_CARDS (sessions opened by the address never are, nor the card last
 * opened from the strip: a finished session opened so would go again as soon as its end arrived).
 */
function trim() {
  if (pinned.length > 0) return;
  const done = [...views.values()].filter((v) => (v.stream === 'ended' || v.stream === 'refused') && v.id !== chosen).map((v) => known.get(v.id) ?? { id: v.id, ended: true, status: '', finishedAt: '', createdAt: '' }).sort(byOrder);
  for (let extra = views.size - MAX_CARDS; extra > 0 && done.length > 0; extra--) {
    const { id } = done.pop();
    views.get(id)?.card.remove();
    views.delete(id);
  }
  renderTop();
}

// ───── The page's filters: status and search, mapped to the list stream's query. ─────
function drawFilters() {
  const select = document.getElementById('filter-status');
  select.replaceChildren(el('option', '', 'every status'), ...STATUS_ORDER.map((s) => el('option', '', s.replaceAll('_', ' '))));
  [...select.options].forEach((o, i) => (o.value = i === 0 ? '' : STATUS_ORDER[i - 1]));
  select.value = filters.status[0] ?? '';
  document.getElementById('filter-search').value = filters.search;
}

function applyFilters() {
  const status = document.getElementById('filter-status').value;
  filters.status = status ? [status] : [];
  filters.search = document.getElementById('filter-search').value.trim();
  const q = new URLSearchParams(location.search);
  q.delete('status');
  q.delete('search');
  for (const s of filters.status) q.append('status', s);
  if (filters.search) q.set('search', filters.search);
  history.replaceState(null, '', addressWith(q));
  // The strip follows the new list at once; cards stay until finished ones give way to new sessions.
  list.rows = new Set();
  for (const id of [...known.keys()]) if (!views.has(id)) known.delete(id);
  openList();
}

document.getElementById('filters').addEventListener('submit', (e) => {
  e.preventDefault();
  applyFilters();
});
document.getElementById('filter-status').addEventListener('change', applyFilters);

// Opening a session from the list: its card, added if it has none, comes into view.
document.getElementById('strip').addEventListener('click', (e) => {
  const chip = e.target instanceof Element ? e.target.closest('.chip') : null;
  if (!chip || e.ctrlKey || e.metaKey || e.shiftKey) return;
  e.preventDefault();
  const id = chip.dataset.session;
  chosen = id;
  if (!views.has(id)) {
    watch([id]);
    trim();
  }
  requestAnimationFrame(() => withView(id, (v) => {
    v.card.scrollIntoView({ behavior: 'smooth', block: 'center' });
    flash(v.card);
  }));
});

setInterval(() => {
  // A stream left waiting for a connection is said once it has waited CONNECT_WAIT_MS.
  if ([...streams].some((r) => r.state === 'connecting') || list.state === 'connecting') renderTop();
  // An ended stream's clock stops even if its end carried no finished_at; a stale card's clock stops too (it is not known to run on).
  for (const v of views.values()) if (!Number.isFinite(v.finishedMs) && v.stream !== 'ended' && v.stream !== 'refused' && v.staleSince === 0 && !document.body.hasAttribute('data-trouble')) tick(v);
}, CLOCK_TICK_MS);

drawFilters();
if (pinned.length > 0) document.querySelector('.intro').textContent = 'The sessions chosen in the address, live: their status, cost, and what the agent sees, thinks and does. Remove ?session= from the address to see every session.';
// Sessions chosen by the address are followed on their own (one stream, one connection); otherwise the list leads.
if (pinned.length > 0) watch(pinned);
else openList();
renderTop();

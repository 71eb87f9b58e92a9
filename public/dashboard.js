// The demo dashboard's script (public/index.html): cards of sessions streamed through pollcast.
// Dependency-free ES module, served at /dashboard.js beside /pollcast-client.js.

import { connectMany } from '/pollcast-client.js';

/** Cards shown at once; beyond it the oldest finished cards give way to new live sessions (pinned ones never do). */
const MAX_CARDS = 9;
/** Log lines kept per card; older ones leave the top of the log (the stream itself is unaffected). */
const MAX_LOG_LINES = 200;
/** How often the demo session list is refreshed, in ms. */
const REFRESH_MS = 3000;
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
/** Order of the statuses in the header's summary: the life of a session; unknown ones come after. */
const STATUS_ORDER = ['pending', 'running', 'idle', 'paused', 'completed', 'failed', 'timed_out', 'interrupted'];

const params = new URLSearchParams(location.search);
const pinned = [...new Set(params.getAll('session').flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean))];
const token = params.get('token') || undefined;

// ───── Connection handling: the only code that knows how streams are opened. ─────
// Multiplexed streams (GET /events, connectMany): the cards' sessions share one
// stream in events mode, the session list one stream in overview mode (status
// and end only). Sessions that appear later come as one more stream per batch,
// which ends by itself once all of its sessions have; past the HTTP/1.1 budget
// below a batch joins an open card stream instead.

/** Sessions one stream may carry: the server's MAX_SESSIONS_PER_STREAM default (more is a 400 for the whole stream). */
const MAX_SESSIONS_PER_STREAM = 100;
/**
 * Card streams open at once over HTTP/1.1, where each holds one of the six
 * connections a browser opens per server (shared by all its tabs, and it
 * silently queues whatever comes next, the list fetch included). Two: the
 * cards' stream and one for the sessions that started since; a later batch
 * joins the open card stream that replays least (see place()), so the cards
 * never take a connection each. With the overview stream the page holds three
 * connections: the list fetch and a second tab of the dashboard still fit.
 */
const MAX_HTTP1_CARD_STREAMS = 2;
/** HTTP/2 and HTTP/3 carry every stream on one connection: a new stream per batch costs no connection and replays nothing. */
const cardStreamLimit = /^h[23]/.test(performance.getEntriesByType('navigation')[0]?.nextHopProtocol ?? '') ? Infinity : MAX_HTTP1_CARD_STREAMS;

/**
 * The page's open streams: { stream (connectMany's), handlers, overview, state }
 * with state 'connecting' | 'live' | 'reconnecting'. Ended and refused ones leave.
 */
const streams = new Set();

/** Sessions of `record` whose `end` has not arrived. */
const openSessionsOf = (record) => record.stream.sessions.filter((id) => !record.stream.ended(id));

/** Events a stream has delivered for its open sessions: what add() would make it send again. */
const replayCost = (record) => openSessionsOf(record).reduce((sum, id) => sum + record.stream.lastIndex(id) + 1, 0);

function openStream(ids, handlers, overview) {
  const record = { stream: undefined, handlers, overview, state: 'connecting' };
  // Stream-wide news (open, reconnecting, refused) concerns each session still open on it.
  const each = (f) => () => {
    if (f) for (const id of openSessionsOf(record)) f(id);
  };
  const leave = () => {
    streams.delete(record);
    handlers.onStreams?.();
  };
  record.stream = connectMany('/', ids, {
    accessToken: token,
    overview,
    onOpen: () => ((record.state = 'live'), each(handlers.onOpen)(), handlers.onStreams?.()),
    onStatus: (status) => handlers.onStatus(status.session, status),
    onEvent: (event) => handlers.onEvent?.(event.session, event),
    onEnd: (end) => handlers.onEnd(end.session, end),
    onDone: leave,
    onReconnecting: () => ((record.state = 'reconnecting'), each(handlers.onReconnecting)(), handlers.onStreams?.()),
    onError: (error) => (each((id) => handlers.onError?.(id, error))(), leave()),
  });
  streams.add(record);
  handlers.onStreams?.();
}

/**
 * Puts `ids` on a stream of `handlers`' kind. Cards: a new stream while the
 * budget allows (nothing is sent twice), else the open card stream whose add()
 * replays least (its open sessions' events so far are sent again and skipped
 * by the client). Overview: always the open overview stream while it has
 * room, as adding to it costs one status per session. A stream carries at
 * most MAX_SESSIONS_PER_STREAM sessions; with no room left a new one opens.
 */
function place(ids, handlers, overview) {
  for (let i = 0; i < ids.length; i += MAX_SESSIONS_PER_STREAM) {
    const batch = ids.slice(i, i + MAX_SESSIONS_PER_STREAM);
    const kin = [...streams].filter((r) => r.handlers === handlers && r.overview === overview && !r.stream.closed);
    const hosts = kin.filter((r) => openSessionsOf(r).length + batch.length <= MAX_SESSIONS_PER_STREAM).sort((a, b) => replayCost(a) - replayCost(b));
    if (hosts.length > 0 && (overview || kin.length >= cardStreamLimit)) hosts[0].stream.add(batch);
    else openStream(batch, handlers, overview);
  }
}

/**
 * Streams the sessions `sessionIds` and reports each through `handlers`,
 * called with the session id first: onOpen(id), onStatus(id, status),
 * onEvent(id, event) (not in overview mode), onEnd(id, end),
 * onReconnecting(id), onError(id, error), and onStreams() whenever the set of
 * open streams or their state changes. Every event index arrives once, in
 * order, across reconnects (the browser's Last-Event-ID carries each stream's
 * cursor). `overview`: status and end only.
 */
function subscribe(sessionIds, handlers, { overview = false } = {}) {
  if (sessionIds.length > 0) place([...new Set(sessionIds)], handlers, overview);
}

/** The open streams, by kind and state, for the header. */
function streamCounts() {
  const all = [...streams];
  const count = (f) => all.filter(f).length;
  return {
    cards: count((r) => !r.overview),
    overview: count((r) => r.overview),
    live: count((r) => r.state === 'live'),
    reconnecting: count((r) => r.state === 'reconnecting'),
    cardSessions: all.filter((r) => !r.overview).reduce((n, r) => n + openSessionsOf(r).length, 0),
    overviewSessions: all.filter((r) => r.overview).reduce((n, r) => n + openSessionsOf(r).length, 0),
  };
}
// ───── End of connection handling. ─────

const root = document.getElementById('sessions');
const template = document.getElementById('card-template');
/** id → view: one card's elements and what the page knows of its session. */
const views = new Map();
/**
 * id → every session the page knows, for the header and the strip: { id,
 * status, steps, cost, startedAt, finishedAt, ended, chip }. Fed by the
 * session list (first sight), the overview stream and the cards' streams.
 */
const known = new Map();
/** True while a redraw of the header and the strip waits for the next frame. */
let drawQueued = false;
/** True once the bridge said it has no session list (a real upstream): only ?session= cards then. */
let noList = false;
/** The list refresh interval, cleared when there is no list. */
let timer;

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
function timeOfDay(iso) {
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? '--:--:--' : t.toLocaleTimeString([], { hour12: false });
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
 * The src of a screenshot: base64 in `data.image` (or already a data:/http(s) URL);
 * undefined when there is none, null when it is there but not base64 (the browser
 * would refuse such a data: URL with a console error rather than an image error).
 */
function imageSource(d) {
  const image = d.image;
  if (image === undefined || image === null || image === '') return undefined;
  if (typeof image !== 'string') return null;
  if (/^(data:image\/|https?:\/\/)/i.test(image)) return image;
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
  // Only web links: a `javascript:` URL from the data must never become clickable.
  if (!/^https?:\/\//i.test(url)) return;
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

function logLine(v, event) {
  const log = v.$.log;
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  const { tag, text, tone } = describe(event);
  const li = el('li', `t-${tone}`);
  li.dataset.index = String(event.index);
  const line = el('span', 'text', clip(text));
  line.title = text;
  li.append(el('span', 'idx', `#${event.index}`), el('span', 'time', timeOfDay(event.timestamp)), el('span', 'tag', tag), line);
  log.append(li);
  flash(li);
  while (log.children.length > MAX_LOG_LINES) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
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
  if (error) box.append(el('h3', '', end.upstream_error ? 'pollcast gave up' : status.replaceAll('_', ' ') || 'error'), el('p', 'error', answerText(error)));
  else if (!box.hasChildNodes() && TERMINAL.has(status)) box.append(el('h3', '', status.replaceAll('_', ' ')), el('p', 'answer', 'no answer given'));
}

/** Handlers of the cards' streams, per session id; a card removed meanwhile ignores what is still in flight. */
const cardHandlers = {
  onOpen: (id) => withView(id, (v) => setStream(v, 'live', 'streaming')),
  onStatus: (id, s) => {
    know(id, s);
    withView(id, (v) => {
      if (!isObject(s)) return;
      setStatus(v, str(s.status));
      setMetrics(v, s.metrics);
      setTimes(v, s);
      // upstream_error comes and goes with pollcast's retries; the stream stays open meanwhile.
      v.$.conn.classList.toggle('trouble', Boolean(s.upstream_error));
      if (s.upstream_error) v.$.conn.textContent = `upstream trouble, pollcast keeps retrying: ${str(s.upstream_error)}`;
      else if (v.stream === 'live') v.$.conn.textContent = 'streaming';
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
      logLine(v, event);
    } catch (err) {
      console.warn(`pollcast demo: event #${event.index} of ${id} could not be shown`, err);
    }
    setFigure(v, 'count', String(event.index + 1));
  }),
  onEnd: (id, end) => {
    know(id, end, true);
    withView(id, (v) => {
      const e = isObject(end) ? end : {};
      setStatus(v, str(e.status));
      setMetrics(v, e.metrics);
      setTimes(v, e);
      showOutcome(v, e);
      setStream(v, 'ended', `finished · ended on its stream (last index ${e.last_index ?? 'none'})`);
      trim();
    });
  },
  onReconnecting: (id) => withView(id, (v) => {
    v.card.dataset.reconnects = String(Number(v.card.dataset.reconnects) + 1);
    setStream(v, 'reconnecting', `connection lost: reconnecting, will resume after #${v.lastIndex}…`);
  }),
  onError: (id) => withView(id, (v) => setStream(v, 'refused', 'refused: no stream for this session (unknown, expired, or not allowed)')),
  onStreams: () => renderTop(),
};

/** Handlers of the overview stream: status and end of every listed session, for the header and the strip. */
const overviewHandlers = {
  onStatus: (id, s) => know(id, s),
  onEnd: (id, end) => know(id, end, true),
  onStreams: () => renderTop(),
};

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
  if (!k) known.set(id, (k = { id, status: '', steps: '', cost: undefined, startedAt: '', finishedAt: '', ended: false, chip: undefined }));
  if (!isObject(s) || (k.ended && !final)) return;
  if (str(s.status)) k.status = str(s.status);
  // Statuses and ends carry `metrics`; a list row carries steps and total_cost flat.
  const m = isObject(s.metrics) ? s.metrics : s;
  if (str(m.steps)) k.steps = str(m.steps);
  if (typeof m.total_cost === 'number' && Number.isFinite(m.total_cost)) k.cost = m.total_cost;
  if (typeof s.started_at === 'string') k.startedAt = s.started_at;
  if (typeof s.finished_at === 'string') k.finishedAt = s.finished_at;
  if (final) k.ended = true;
  renderTop();
}

function addCard(id, atTop) {
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
  if (atTop) root.prepend(card);
  else root.append(card);
  const v = { id, card, $, stream: 'connecting', lastIndex: -1, cost: 0, startedMs: NaN, finishedMs: NaN, callIds: new Set(), answerFromEvent: undefined, pendingShot: undefined };
  views.set(id, v);
  know(id);
  return v;
}

/** Cards for `ids` (in display order), streamed together: one more stream for the batch (see subscribe()). */
function watch(ids, atTop) {
  if (ids.length === 0) return;
  for (const id of atTop ? [...ids].reverse() : ids) addCard(id, atTop);
  subscribe(ids, cardHandlers);
  renderTop();
}

/** Redraws the header and the strip once per frame, however many statuses arrived in it. */
function renderTop() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => {
    drawQueued = false;
    drawPill();
    drawSummary();
    drawStrip();
  });
}

function drawPill() {
  const c = streamCounts();
  const pill = document.getElementById('conn');
  const text = document.getElementById('conn-text');
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const cards = [...views.values()];
  pill.dataset.streams = String(streams.size);
  pill.title = `${plural(c.cards, 'events stream')} for ${plural(c.cardSessions, 'open card')}, ${plural(c.overview, 'overview stream')} for ${plural(c.overviewSessions, 'listed session')} (status and end only)`;
  if (c.reconnecting > 0) [pill.dataset.state, text.textContent] = ['reconnecting', `reconnecting ${plural(c.reconnecting, 'stream')}…`];
  else if (c.live > 0) [pill.dataset.state, text.textContent] = ['live', `live · ${plural(c.cards, 'card stream')}${c.overview > 0 ? ` + ${plural(c.overview, 'overview stream')}` : ''}`];
  else if (cards.length === 0 && noList) [pill.dataset.state, text.textContent] = ['idle', 'no session chosen'];
  else if (streams.size > 0 || cards.length === 0) [pill.dataset.state, text.textContent] = ['connecting', 'connecting…'];
  else [pill.dataset.state, text.textContent] = ['idle', 'no live session'];
}

/** The header's counts by status and total cost, over every session the page knows (not only the cards). */
function drawSummary() {
  const all = [...known.values()];
  const byStatus = new Map();
  for (const k of all) byStatus.set(k.status || 'connecting', (byStatus.get(k.status || 'connecting') ?? 0) + 1);
  const rank = (s) => (STATUS_ORDER.includes(s) ? STATUS_ORDER.indexOf(s) : STATUS_ORDER.length);
  const item = (n, label, status) => {
    const span = el('span', status ? 'swatch' : undefined);
    if (status) span.dataset.status = status;
    span.append(el('b', '', String(n)), ` ${label}`);
    return span;
  };
  document.getElementById('summary').replaceChildren(
    item(all.length, all.length === 1 ? 'session' : 'sessions'),
    ...[...byStatus].sort(([a], [b]) => rank(a) - rank(b)).map(([s, n]) => item(n, s.replaceAll('_', ' '), s)),
    item(money(all.reduce((sum, k) => sum + (k.cost ?? 0), 0)), 'spent'),
  );
}

/** A link that opens the session alone (with the page's token, if any). */
function sessionHref(id) {
  const q = new URLSearchParams({ session: id });
  if (token) q.set('token', token);
  return `?${q}`;
}

function makeChip(k) {
  const chip = el('a', 'chip');
  chip.dataset.session = k.id;
  chip.href = sessionHref(k.id);
  const badge = el('span', 'badge');
  badge.append(el('span', 'icon'), el('span', 'badge-text', '…'));
  chip.append(el('span', 'chip-id', k.id), badge, el('span', 'chip-steps'), el('span', 'chip-cost'));
  chip.title = k.id;
  return chip;
}

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** The strip: every known session, live ones first (newest on top), then the most recently finished. */
function drawStrip() {
  const all = [...known.values()];
  document.getElementById('overview').hidden = all.length === 0;
  document.getElementById('overview-count').textContent = String(all.length);
  const live = (k) => !k.ended && !TERMINAL.has(k.status);
  const order = (k) => (live(k) ? `1${k.startedAt || '9'}` : `0${k.finishedAt}`);
  all.sort((a, b) => order(b).localeCompare(order(a)));
  for (const k of all) {
    k.chip ??= makeChip(k);
    const { chip } = k;
    if (chip.dataset.status !== k.status) chip.dataset.status = k.status;
    setText(chip.querySelector('.badge-text'), k.status ? k.status.replaceAll('_', ' ') : '…');
    setText(chip.querySelector('.chip-steps'), k.steps === '' ? '– steps' : `${k.steps} step${k.steps === '1' ? '' : 's'}`);
    setText(chip.querySelector('.chip-cost'), money(k.cost));
    chip.classList.toggle('on-screen', views.has(k.id));
  }
  const strip = document.getElementById('strip');
  const chips = all.map((k) => k.chip);
  // Only when the order changed: re-inserting every chip would restart their animations.
  if (chips.length !== strip.children.length || chips.some((c, i) => strip.children[i] !== c)) strip.replaceChildren(...chips);
}

/** Drops the oldest finished cards beyond MAX_CARDS (pinned sessions are never dropped). */
function trim() {
  if (pinned.length > 0) return;
  const done = [...root.querySelectorAll('.card[data-stream="ended"], .card[data-stream="refused"]')];
  for (let extra = views.size - MAX_CARDS; extra > 0 && done.length > 0; extra--) {
    const card = done.pop();
    views.delete(card.dataset.session);
    card.remove();
  }
  renderTop();
}

async function refresh(first) {
  let sessions;
  try {
    const res = await fetch('/demo/sessions', { cache: 'no-store' });
    if (res.status === 404) {
      const note = document.getElementById('note');
      note.hidden = false;
      note.textContent = 'This pollcast bridges a real sessions API, so there is no session list: add ?session=<id> to the address to watch one.';
      noList = true;
      clearInterval(timer);
      renderTop();
      return;
    }
    if (!res.ok) return;
    ({ sessions } = await res.json());
  } catch {
    return; // the streams show their own state; the list is asked again on the next tick
  }
  if (!Array.isArray(sessions)) return;
  const listed = sessions.filter((s) => isObject(s) && typeof s.id === 'string');
  const ids = new Set(listed.map((s) => s.id));
  // A session the list no longer has (the demo forgets old finished ones) leaves the strip, unless it has a card.
  for (const id of known.keys()) if (!ids.has(id) && !views.has(id)) known.delete(id);
  const fresh = listed.filter((s) => !known.has(s.id));
  for (const s of fresh) know(s.id, s, s.finished_at != null);
  // The overview stream follows every live session of the list; a finished one's row is final already.
  subscribe(fresh.filter((s) => s.finished_at == null).map((s) => s.id), overviewHandlers, { overview: true });

  const rows = listed.filter((s) => !views.has(s.id));
  // Live sessions first (newest on top), then the most recently finished.
  const order = (s) => (s.finished_at == null ? `1${s.started_at ?? '9'}` : `0${s.finished_at}`);
  rows.sort((a, b) => order(b).localeCompare(order(a)));
  const chosen = first ? rows.slice(0, MAX_CARDS) : rows.filter((s) => s.finished_at == null);
  watch(chosen.map((s) => s.id), !first);
  trim();
}

document.getElementById('strip').addEventListener('click', (e) => {
  const chip = e.target instanceof Element ? e.target.closest('.chip') : null;
  const v = chip && views.get(chip.dataset.session);
  if (!v || e.ctrlKey || e.metaKey || e.shiftKey) return;
  // Its card is on screen: show it rather than leave the page.
  e.preventDefault();
  v.card.scrollIntoView({ behavior: 'smooth', block: 'center' });
  flash(v.card);
});

setInterval(() => {
  // An ended stream's clock stops even if its end carried no finished_at.
  for (const v of views.values()) if (!Number.isFinite(v.finishedMs) && v.stream !== 'ended' && v.stream !== 'refused') tick(v);
}, CLOCK_TICK_MS);

if (pinned.length > 0) watch(pinned, false);
else {
  timer = setInterval(() => refresh(false), REFRESH_MS);
  refresh(true);
}
renderTop();

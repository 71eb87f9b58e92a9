/**
 * Where each event of a `/changes` body lies in its bytes, so that an event's
 * frame can be built from the upstream's own JSON text instead of
 * re-serialising the parsed object (a screenshot is ~100 KB of base64 that
 * JSON.stringify would scan and copy again, then encode to UTF-8 once more).
 *
 * It only locates: the body has already been parsed and shape-checked by
 * JSON.parse and parseChanges, so validity is never decided here. Anything
 * unexpected gives null and the caller serialises as before. The scan reads
 * the body as Latin-1 text (one character per byte, so its offsets are byte
 * offsets): for an ASCII body, the very string JSON.parse was given.
 */
import { utf8Of, type Body } from './body.ts';
import { RAW_EVENT_JSON, type UpstreamEvent } from './types.ts';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;
const LF = 0x0a;
const CR = 0x0d;
const EVENTS_KEY = '"new_events"';

function isSpace(c: number): boolean {
  return c === 0x20 || c === LF || c === CR || c === 0x09;
}

function skipSpace(b: string, i: number): number {
  while (isSpace(b.charCodeAt(i))) i++;
  return i;
}

/**
 * Index just past the string whose opening quote is at `start`, or -1. A string
 * is crossed by `indexOf` from quote to quote (a base64 screenshot: one call);
 * once a quote turns out escaped (JSON text inside a string, `\"` after `\"`),
 * the rest of it by a plain character loop, so each escaped quote does not cost a
 * native call.
 */
function stringEnd(b: string, start: number): number {
  const q = b.indexOf('"', start + 1);
  if (q < 0) return -1;
  let backslashes = 0;
  for (let k = q - 1; b.charCodeAt(k) === BACKSLASH; k--) backslashes++;
  if (backslashes % 2 === 0) return q + 1;
  for (let i = q + 1; i < b.length; i++) {
    const c = b.charCodeAt(i);
    if (c === BACKSLASH) i++;
    else if (c === QUOTE) return i + 1;
  }
  return -1;
}

/** Index just past the JSON value starting at `i`, or -1. */
function valueEnd(b: string, i: number): number {
  const c = b.charCodeAt(i);
  if (c === QUOTE) return stringEnd(b, i);
  if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
    let depth = 0;
    while (i < b.length) {
      const x = b.charCodeAt(i);
      if (x === QUOTE) {
        i = stringEnd(b, i);
        if (i < 0) return -1;
        continue;
      }
      if (x === OPEN_OBJECT || x === OPEN_ARRAY) depth++;
      else if (x === CLOSE_OBJECT || x === CLOSE_ARRAY) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    return -1;
  }
  // A number, true, false or null: up to the next delimiter.
  const start = i;
  for (;;) {
    const x = b.charCodeAt(i);
    if (i >= b.length || x === COMMA || x === CLOSE_OBJECT || x === CLOSE_ARRAY || isSpace(x)) break;
    i++;
  }
  return i > start ? i : -1;
}

/** Whether b[from, to) holds a backslash (a key spelled with an escape). */
function hasBackslash(b: string, from: number, to: number): boolean {
  const at = b.indexOf('\\', from);
  return at >= 0 && at < to;
}

const FRAME_KEYS = ['"type"', '"data"', '"timestamp"'];
const ALL_FRAME_KEYS = (1 << FRAME_KEYS.length) - 1;

/** Which of FRAME_KEYS the key b[from, to) is, spelled plainly (quotes included), or -1. */
function frameKeyIndex(b: string, from: number, to: number): number {
  return FRAME_KEYS.findIndex((key) => to - from === key.length && b.startsWith(key, from));
}
/** One element of `new_events`: its text's span, and whether it is an object of exactly the frame's keys. */
export interface EventSpan {
  start: number;
  end: number;
  /**
   * The element is an object whose members are `type`, `data` and `timestamp`, each once and
   * spelled plainly: its text then says what the parsed event says (a repeated key would be
   * read differently by parsers that keep the first, or refuse it).
   */
  frameKeysOnly: boolean;
}

/** The span of the object starting at `i` (an opening brace), walked member by member, or null. */
function objectSpan(b: string, i: number): EventSpan | null {
  const start = i;
  let seen = 0;
  let plain = true;
  i = skipSpace(b, i + 1);
  if (b.charCodeAt(i) === CLOSE_OBJECT) return { start, end: i + 1, frameKeysOnly: false };
  for (;;) {
    if (b.charCodeAt(i) !== QUOTE) return null;
    const keyEnd = stringEnd(b, i);
    if (keyEnd < 0) return null;
    const k = frameKeyIndex(b, i, keyEnd);
    if (k < 0 || (seen & (1 << k)) !== 0) plain = false;
    else seen |= 1 << k;
    i = skipSpace(b, keyEnd);
    if (b.charCodeAt(i) !== COLON) return null;
    const valueStop = valueEnd(b, skipSpace(b, i + 1));
    if (valueStop < 0) return null;
    i = skipSpace(b, valueStop);
    if (b.charCodeAt(i) === CLOSE_OBJECT) return { start, end: i + 1, frameKeysOnly: plain && seen === ALL_FRAME_KEYS };
    if (b.charCodeAt(i) !== COMMA) return null;
    i = skipSpace(b, i + 1);
  }
}

/** The elements of the array starting at `i` and the index just past it, in one pass, or null. */
function arrayElements(b: string, i: number): { elements: EventSpan[]; end: number } | null {
  if (b.charCodeAt(i) !== OPEN_ARRAY) return null;
  const elements: EventSpan[] = [];
  i = skipSpace(b, i + 1);
  if (b.charCodeAt(i) === CLOSE_ARRAY) return { elements, end: i + 1 };
  for (;;) {
    let element: EventSpan | null;
    if (b.charCodeAt(i) === OPEN_OBJECT) element = objectSpan(b, i);
    else {
      const end = valueEnd(b, i);
      element = end < 0 ? null : { start: i, end, frameKeysOnly: false };
    }
    if (element === null) return null;
    elements.push(element);
    i = skipSpace(b, element.end);
    if (b.charCodeAt(i) === CLOSE_ARRAY) return { elements, end: i + 1 };
    if (b.charCodeAt(i) !== COMMA) return null;
    i = skipSpace(b, i + 1);
  }
}

/**
 * The elements of the top-level `new_events` of a JSON body read as Latin-1
 * (offsets are byte offsets; the last such key, as JSON.parse keeps), or null if the body is not laid out as expected,
 * spells a top-level key with an escape, or has no such key. One pass.
 */
export function eventSpans(body: string): EventSpan[] | null {
  let i = skipSpace(body, 0);
  if (body.charCodeAt(i) !== OPEN_OBJECT) return null;
  let spans: EventSpan[] | null = null;
  i = skipSpace(body, i + 1);
  if (body.charCodeAt(i) === CLOSE_OBJECT) return null;
  for (;;) {
    if (body.charCodeAt(i) !== QUOTE) return null;
    const keyEnd = stringEnd(body, i);
    if (keyEnd < 0) return null;
    // A key spelled with an escape might be "new_events" too (JSON.parse keeps the last): give up rather than guess.
    if (hasBackslash(body, i, keyEnd)) return null;
    const isEvents = keyEnd - i === EVENTS_KEY.length && body.startsWith(EVENTS_KEY, i);
    i = skipSpace(body, keyEnd);
    if (body.charCodeAt(i) !== COLON) return null;
    i = skipSpace(body, i + 1);
    let end: number;
    if (isEvents) {
      const array = arrayElements(body, i);
      if (array === null) return null;
      spans = array.elements;
      end = array.end;
    } else {
      end = valueEnd(body, i);
      if (end < 0) return null;
    }
    i = skipSpace(body, end);
    if (body.charCodeAt(i) === CLOSE_OBJECT) return spans;
    if (body.charCodeAt(i) !== COMMA) return null;
    i = skipSpace(body, i + 1);
  }
}

/** Whether the parsed element has a string `timestamp` and a `data` (parseChanges would otherwise fill them in). */
function parsedAsFramed(raw: unknown): boolean {
  if (typeof raw !== 'object' || raw === null) return false;
  const r = raw as Record<string, unknown>;
  return typeof r.timestamp === 'string' && r.data !== undefined;
}

/**
 * Bodies whose events average less than this (bytes) are not scanned: re-serialising a small
 * event costs about what locating it would, and the gain is in screenshots.
 */
export const TEXT_MIN_AVERAGE_EVENT_BYTES = 4096;

/**
 * Gives each event whose text can stand for it that text (`RAW_EVENT_JSON`): the body must be
 * UTF-8 with events of `TEXT_MIN_AVERAGE_EVENT_BYTES` or more on average, its spans must match
 * the parsed events one to one, the element's text must hold exactly `type`, `data` and
 * `timestamp` (a string), once each, and no line break (an SSE `data:` line cannot).
 * `text` is the body's UTF-8 decoding (what JSON.parse read), `rawEvents` the parsed
 * `new_events` elements, `events` what parseChanges made of them. Each text is a list of
 * views on the body's chunks (a screenshot usually lies across two socket reads).
 */
export function attachEventText(body: Body, text: string, rawEvents: unknown, events: UpstreamEvent[]): void {
  if (events.length === 0 || !Array.isArray(rawEvents) || rawEvents.length !== events.length) return;
  if (body.length / events.length < TEXT_MIN_AVERAGE_EVENT_BYTES || !body.isUtf8()) return;
  const bytes = body.ascii ? text : body.latin1();
  const spans = eventSpans(bytes);
  if (spans === null || spans.length !== events.length) return;
  const anyBreak = bytes.indexOf('\n') >= 0 || bytes.indexOf('\r') >= 0;
  for (let k = 0; k < events.length; k++) {
    const { start, end, frameKeysOnly } = spans[k]!;
    if (!frameKeysOnly || !parsedAsFramed(rawEvents[k])) continue;
    if (anyBreak && hasBreak(bytes, start, end)) continue;
    const parts = body.slice(start, end);
    events[k]![RAW_EVENT_JSON] = parts;
    dataFromText(events[k]!, parts);
  }
}

/** Whether b[from, to) holds a line break. */
function hasBreak(b: string, from: number, to: number): boolean {
  const lf = b.indexOf('\n', from);
  const cr = b.indexOf('\r', from);
  return (lf >= 0 && lf < to) || (cr >= 0 && cr < to);
}

/**
 * Makes `event.data` read from the event's text when asked (the cluster log,
 * a Durable Stream read from the upstream) instead of holding the value
 * JSON.parse made of it. The answer of a long-poll reaches the loop through
 * promises that are in the old generation by then, and their pointers kept
 * that value (a screenshot's ~100 KB string) alive through young collections
 * until it was promoted, ~100 KB a screenshot (bench/RESULTS.md, issue 21,
 * tenth round); dropped here, it dies young. The trade: with so little
 * promoted, V8 keeps the old generation tight and collects it about once a
 * second under a stream of screenshots (~17 % more CPU per delivery, ~13 %
 * less peak RSS than with the value kept; eleventh round).
 */
function dataFromText(event: UpstreamEvent, text: readonly Buffer[]): void {
  Object.defineProperty(event, 'data', {
    enumerable: true,
    configurable: true,
    get: () => (JSON.parse(utf8Of(text)) as { data: unknown }).data,
  });
}

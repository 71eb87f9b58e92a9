/** The wire format, byte for byte. */
import { describe, expect, it } from 'vitest';
import { encodeComment, encodeFrame, encodeFrameText } from '../../src/sse.ts';
import { endFrame, eventFrame, frameBytes, retryFrame, statusFrameOf, statusJson } from '../../src/hub/frames.ts';
import { UNKNOWN_SNAPSHOT, type Snapshot } from '../../src/upstream/snapshot.ts';

const statusFrame = (s: Snapshot, e: string | null) => statusFrameOf(statusJson(s, e));

describe('SSE encoding', () => {
  it('encodes id, event, retry and data in order, ending with a blank line', () => {
    expect(encodeFrameText({ event: 'status', id: '7', retry: 1000, data: '{"a":1}' })).toBe('event: status\nid: 7\nretry: 1000\ndata: {"a":1}\n\n');
  });

  it('splits data on CR, LF and CRLF into several data lines', () => {
    expect(encodeFrameText({ data: 'a\nb\r\nc\rd' })).toBe('data: a\ndata: b\ndata: c\ndata: d\n\n');
    expect(encodeFrameText({ data: '' })).toBe('data: \n\n');
  });

  it('refuses CR/LF in id and event, and NUL in id', () => {
    expect(() => encodeFrame({ id: '1\n2', data: 'x' })).toThrow(/CR or LF/);
    expect(() => encodeFrame({ event: 'a\rb', data: 'x' })).toThrow(/CR or LF/);
    expect(() => encodeFrame({ id: '1\u00002', data: 'x' })).toThrow(/NUL/);
  });

  it('encodes comments line by line', () => {
    expect(encodeComment('keep-alive').toString()).toBe(': keep-alive\n\n');
    expect(encodeComment('a\nb').toString()).toBe(': a\n: b\n\n');
  });

  it('encodes UTF-8 as bytes', () => {
    const frame = encodeFrame({ data: 'é' });
    expect([...frame]).toEqual([...Buffer.from('data: é\n\n', 'utf8')]);
  });
});

describe('pollcast frames', () => {
  const state: Snapshot = { ...UNKNOWN_SNAPSHOT, status: 'running', started_at: '2026-01-01T00:00:00Z', finished_at: null, error: null, answer: null, metrics: { steps: 1 } };

  it('encodes a session event with its index as id and no event field', () => {
    const text = frameBytes(eventFrame(3, { type: 'message', data: { text: 'hi\nthere' }, timestamp: 't' })).toString();
    expect(text).toBe('id: 3\ndata: {"index":3,"type":"message","data":{"text":"hi\\nthere"},"timestamp":"t"}\n\n');
  });

  it('encodes status with the snapshot fields and end with answer and last_index', () => {
    expect(statusFrame(state, null).toString()).toBe(
      'event: status\ndata: {"status":"running","started_at":"2026-01-01T00:00:00Z","finished_at":null,"error":null,"metrics":{"steps":1}}\n\n',
    );
    expect(JSON.parse(statusFrame(state, 'upstream said 401').toString().split('data: ')[1]!).upstream_error).toBe('upstream said 401');
    const end = endFrame({ ...state, status: 'completed', finished_at: 'f', answer: { ok: true } }, 9, null).toString();
    expect(end).toBe('event: end\ndata: {"status":"completed","finished_at":"f","error":null,"answer":{"ok":true},"metrics":{"steps":1},"last_index":9}\n\n');
    expect(retryFrame(2000).toString()).toBe('retry: 2000\n\n');
  });

  it('passes unknown upstream fields through status and end, never over the known ones', () => {
    const withExtra: Snapshot = { ...state, extra: { outcome: 'success', status: 'not me' } };
    const status = JSON.parse(statusFrame(withExtra, null).toString().split('data: ')[1]!);
    expect(status).toMatchObject({ outcome: 'success', status: 'running' });
    const end = JSON.parse(endFrame(withExtra, null, null).toString().split('data: ')[1]!);
    expect(end).toMatchObject({ outcome: 'success', status: 'running', last_index: null });
  });

  it('marks an event relayed without its data', () => {
    expect(frameBytes(eventFrame(4, { type: 'AgentEvent', data: null, timestamp: 't', omitted: 'too_large' })).toString()).toBe(
      'id: 4\ndata: {"index":4,"type":"AgentEvent","data":null,"timestamp":"t","omitted":"too_large"}\n\n',
    );
  });
});

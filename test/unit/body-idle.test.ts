/** The request-body idle clock: bytes and resumes restart it, a pause (the reader behind) stops it. */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { watchBodyIdle } from '../../src/http/body-idle.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('watchBodyIdle', () => {
  it('does not count a pause that begins and ends between two of its checks (the upstream behind, not the client)', async () => {
    const body = new PassThrough();
    let fired = false;
    const stop = watchBodyIdle(body, 300, () => (fired = true));
    body.resume();
    body.write('a');
    await sleep(5);
    body.pause();
    await sleep(275);
    body.resume();
    // The client's next byte comes 100 ms after the reader caught up: 380 ms after its last one, 100 ms of its own.
    await sleep(100);
    body.write('b');
    await sleep(150);
    expect(fired).toBe(false);
    stop();
  });

  it('fires once the client itself has sent nothing for the idle time, counted from the last byte or resume', async () => {
    const body = new PassThrough();
    let firedAt = 0;
    const started = performance.now();
    watchBodyIdle(body, 200, () => (firedAt = performance.now() - started));
    body.resume();
    body.write('a');
    await sleep(100);
    body.pause();
    await sleep(300);
    expect(firedAt).toBe(0);
    body.resume();
    await sleep(400);
    // 200 ms after the resume at ~400 ms.
    expect(firedAt).toBeGreaterThanOrEqual(580);
    expect(firedAt).toBeLessThan(750);
  });

  it('stops with the body', async () => {
    const body = new PassThrough();
    let fired = false;
    watchBodyIdle(body, 100, () => (fired = true));
    body.resume();
    body.end('done');
    await sleep(250);
    expect(fired).toBe(false);
  });
});

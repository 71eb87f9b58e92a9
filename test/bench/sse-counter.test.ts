/** The load client's frame counter and latency histogram (pure units). */
import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../../bench/latency-histogram.ts';
import { StreamCounter, nowMs } from '../../bench/sse-counter.ts';

const frame = (index: number, emittedAtMs: number) => `id: ${index}\ndata: {"index":${index},"type":"t","data":{"emitted_at_ms":${emittedAtMs}},"timestamp":"x"}\n\n`;

describe('StreamCounter', () => {
  it('counts events split at any byte, skipping retry, status, comments, and sees the end', () => {
    const samples: number[] = [];
    const c = new StreamCounter((ms) => samples.push(ms));
    const now = nowMs();
    const text = `retry: 2000\n\nevent: status\ndata: {"status":"running"}\n\n${frame(0, now)}: keep-alive\n\n${frame(1, now)}${frame(2, now)}event: end\ndata: {}\n\n`;
    const bytes = Buffer.from(text);
    for (let i = 0; i < bytes.length; i += 7) c.push(bytes.subarray(i, i + 7));
    expect(c.received).toBe(3);
    expect(c.next).toBe(3);
    expect(c.lost(3)).toBe(0);
    expect(c.duplicated).toBe(0);
    expect(c.ended).toBe(true);
    expect(samples).toHaveLength(3);
    for (const ms of samples) expect(ms).toBeGreaterThanOrEqual(0);
  });

  it('reports gaps and a missing tail as lost, repeats as duplicated', () => {
    const c = new StreamCounter(() => {});
    c.push(Buffer.from(frame(0, 1) + frame(2, 1) + frame(2, 1) + frame(1, 1) + frame(3, 1)));
    expect(c.gaps).toBe(1);
    expect(c.duplicated).toBe(2);
    expect(c.lost(6)).toBe(3);
  });

  it('resuming: events before the start index are stale (not duplicates), only events from latencyFromIndex are timed', () => {
    const samples: number[] = [];
    const c = new StreamCounter((ms) => samples.push(ms), { startIndex: 5, latencyFromIndex: 7 });
    const now = nowMs();
    c.push(Buffer.from(frame(0, 1) + frame(4, 1)));
    expect(c.firstAtMs).toBeNull();
    c.push(Buffer.from(frame(5, 1) + frame(6, 1) + frame(7, now)));
    expect(c.stale).toBe(2);
    expect(c.duplicated).toBe(0);
    expect(c.lost(8)).toBe(0);
    expect(c.firstAtMs).not.toBeNull();
    expect(samples).toHaveLength(1);
    expect(samples[0]!).toBeLessThan(60_000);
  });

  it('reassembles a large frame read in many small chunks, with the frame end split across two', () => {
    const c = new StreamCounter(() => {});
    const big = frame(0, 1).replace('"t"', `"${'x'.repeat(100_000)}"`);
    const bytes = Buffer.from(big + frame(1, 1));
    const cut = big.length - 1; // between the two newlines that end the big frame
    for (let i = 0; i < cut; i += 4096) c.push(bytes.subarray(i, Math.min(i + 4096, cut)));
    expect(c.received).toBe(0);
    c.push(bytes.subarray(cut));
    expect(c.received).toBe(2);
    expect(c.next).toBe(2);
  });
});

describe('LatencyHistogram', () => {
  it('gives quantiles at 10 µs resolution, the exact max, and merges', () => {
    const a = new LatencyHistogram();
    for (let i = 1; i <= 100; i++) a.record(i / 10);
    const b = new LatencyHistogram();
    b.merge(a.toJSON());
    b.record(2500.5);
    expect(b.count).toBe(101);
    expect(b.quantile(0.5)).toBeCloseTo(5.1, 1);
    expect(b.quantile(0.99)).toBeCloseTo(10, 1);
    expect(b.quantile(1)).toBe(2500.5);
  });
});

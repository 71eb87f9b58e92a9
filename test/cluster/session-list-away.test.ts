/**
 * The session list in cluster mode while Redis is away (hung: SIGSTOP, its
 * connections open and silent). The cluster's one poll lives where the
 * list's lease is, in Redis: without Redis nobody would poll, and every
 * dashboard would freeze. Each instance polls its own viewers' lists
 * meanwhile, and once Redis answers they share one poll again.
 */
import { expect, it } from 'vitest';
import { createSimulator } from '../../src/simulator/index.ts';
import { record, type Recorder } from '../helpers/harness.ts';
import { startRedis } from '../helpers/redis.ts';
import { listOf } from '../helpers/session-list.ts';
import { inProcessParts, serverStarter } from './helpers.ts';

const parts = inProcessParts();
const LIST_EVENTS = ['snapshot', 'upsert', 'remove'];

it('Redis hung: every instance\'s viewers keep seeing new sessions (each instance polls), and after it one poll is shared again', async () => {
  parts.redis = await startRedis();
  const sim = (parts.sim = await createSimulator({ api: 'real', run: { eventEveryMs: 200, events: 200 } }));
  const create = async (message: string) => {
    const res = await fetch(`${sim.url}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'web-agent', messages: message }) });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  };
  const start = serverStarter(parts, { AUTH: 'none', SESSION_LIST_POLL_SECONDS: '1', SESSION_LIST_GRACE_SECONDS: '0' });
  const servers = [await start(), await start()];
  const viewers: Recorder[] = servers.map((s) => record(`${s.url}/sessions/events`, { events: LIST_EVENTS }));
  parts.recorders.push(...viewers);
  const shows = (id: string, timeoutMs: number) => Promise.all(viewers.map((v) => v.until((x) => listOf(x).has(id), timeoutMs)));
  await shows(await create('before'), 15_000);
  // One instance holds the list's poll.
  expect(servers.filter((s) => s.lists.calls > 0)).toHaveLength(1);

  parts.redis.pause();
  const during = await create('while Redis is silent');
  await shows(during, 15_000);
  expect(servers.every((s) => s.lists.calls > 0), 'both instances polled').toBe(true);

  parts.redis.resume();
  await shows(await create('after'), 15_000);
  // Shared again: over 4 s, the list is polled by one instance only.
  await new Promise((r) => setTimeout(r, 2000));
  const before = servers.map((s) => s.lists.calls);
  await new Promise((r) => setTimeout(r, 4000));
  const polled = servers.map((s, i) => s.lists.calls - before[i]!);
  expect(polled.filter((n) => n > 0), `polls per instance over 4 s: ${polled.join(', ')}`).toHaveLength(1);
}, 90_000);

/**
 * One viewer of a session list: `retry:`, then a snapshot (or, resuming,
 * only the changes it missed), then each change as it happens, limited to
 * the sessions the viewer may see. Tracked by Streams like every other
 * stream (heartbeat, access expiry, shutdown).
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import { StreamConnection, type CloseReason } from './connection.ts';
import { admits, type ListCursor, type ListListener } from './list-feed.ts';
import type { ListEntry, ListHub } from './list-hub.ts';
import { accessErrorFrame, retryFrame } from './frames.ts';
import type { Releasable, Streams } from './streams.ts';
import { writeStreamHead, type StreamResponse } from './writer.ts';
import type { StreamAccess } from './connection.ts';

/** A list stream's connection. */
export class ListSubscriber extends StreamConnection implements ListListener {
  /** The sessions this viewer may see (a token's claim), or undefined for every listed one. */
  allow: ReadonlySet<string> | undefined;

  reads(): boolean {
    // A list names no session it reads: the per-session stream counts are not its business.
    return false;
  }

  onChange(id: string, frame: Buffer): void {
    if (admits(this.allow, id)) this.write(frame);
  }

  onTrouble(frame: Buffer): void {
    this.write(frame);
  }

  onListed(snapshot: (allow: ReadonlySet<string> | undefined) => Buffer): void {
    this.write(snapshot(this.allow));
  }

  onRefused(code: string): void {
    this.write(accessErrorFrame(code));
    this.close('revoked');
  }
}

/** How a list stream is opened. */
export interface ListStreamOptions {
  entry: ListEntry;
  /** The viewer's client key, its use of the entry is given back under. */
  holder: string;
  listHub: ListHub;
  streams: Streams;
  log: Logger;
  maxQueueBytes: number;
  retryMs: number;
  /** Where the viewer's last stream stopped (its Last-Event-ID), if it resumes. */
  resume: ListCursor | undefined;
  allow: ReadonlySet<string> | undefined;
  extraHeaders: OutgoingHttpHeaders;
  slot: Releasable | undefined;
  access: StreamAccess | undefined;
}

/** Starts the stream on `res`; owns the entry's use and the slot from here on. */
export function startListStream(res: StreamResponse, o: ListStreamOptions): ListSubscriber {
  const { feed } = o.entry;
  writeStreamHead(res, o.extraHeaders);
  const sub = new ListSubscriber(res, {
    maxQueueBytes: o.maxQueueBytes,
    onClose: (_conn, reason: CloseReason) => {
      feed.listeners.delete(sub);
      o.slot?.release();
      o.streams.forget(sub, reason);
      o.listHub.release(o.entry, o.holder);
      o.log.info({ list: feed.filter.logKey, reason, durationMs: Math.round(performance.now() - sub.openedAt) }, 'list stream closed');
    },
  });
  sub.allow = o.allow;
  o.streams.adopt(sub, o.access);
  o.log.info({ list: feed.filter.logKey, resume: o.resume !== undefined }, 'list stream open');
  // Everything up to now is written in one go and the listener added in the same turn: no change can fall between.
  const parts = [retryFrame(o.retryMs)];
  if (feed.trouble !== null) parts.push(feed.troubleFrame());
  if (feed.listed) {
    const missed = o.resume === undefined ? null : feed.changesSince(o.resume, o.allow);
    parts.push(...(missed ?? [feed.snapshotFrame(o.allow)]));
  }
  // Until the upstream first answers, the viewer has the trouble only; its snapshot comes with the first listing (onListed).
  sub.writeParts(parts);
  feed.listeners.add(sub);
  return sub;
}

/**
 * Gives back node:http's request parser of an HTTP/1.1 connection once it
 * carries an open stream. The parser is a native object of ~6 KB (fixed
 * arrays for 32 header fields and values) that node keeps for the life of
 * the connection, most of an idle stream's memory (bench/RESULTS.md, issue
 * 21, fifth round); a stream's client sends nothing more on its connection,
 * so the parser has nothing left to parse. It goes back to node's parser
 * pool (or is closed), the way node itself lets go of it for an `upgrade`.
 *
 * What the connection keeps: the response and its socket, so writes, 'drain',
 * 'close' and errors behave as before. What changes: bytes the client sends
 * after the request are discarded (a request pipelined behind an endless
 * stream could never be answered anyway); a client's FIN ends the socket as
 * node:http does; and the connection closes once the stream ends, which the
 * stream's head announces (`connection: close`). Such a connection leaves
 * node's list of HTTP connections, so `releasedConnections(server)` is how a
 * shutdown finds it.
 *
 * It leans on node:http internals (`socket.parser`, `_http_common`'s
 * `freeParser`, the names of node's socket listeners), checked before each
 * release: on a Node where any of them differs, nothing is released; the
 * stream still works and its connection still closes at its end, as its head
 * said. `PARSER_RELEASE_SUPPORTED` only says that `freeParser` exists; the
 * tests check that a release happens on the Node this project runs on.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

/** node:http's parser as far as a release touches it. */
interface NodeParser {
  incoming: unknown;
}
type ParsedSocket = Socket & { parser?: NodeParser | null; server?: Server };
type FreeParser = (parser: NodeParser, req: IncomingMessage | null, socket: Socket | null) => void;

const freeParser = ((): FreeParser | undefined => {
  try {
    const common = createRequire(import.meta.url)('_http_common') as { freeParser?: unknown };
    return typeof common.freeParser === 'function' ? (common.freeParser as FreeParser) : undefined;
  } catch {
    return undefined;
  }
})();

/** True when this Node offers what a release needs. */
export const PARSER_RELEASE_SUPPORTED = freeParser !== undefined;

// node:http's own listeners that hold the parser (lib/_http_server.js, connectionListenerInternal).
const NODE_DATA_LISTENER = 'bound socketOnData';
const NODE_END_LISTENER = 'bound socketOnEnd';

const released = new WeakMap<Server, Set<Socket>>();

function discardBytes(): void {}
// The client half-closed: node:http ends the socket then (httpAllowHalfOpen is false), so does this.
function endOnFin(this: Socket): void {
  this.end();
}
function forgetReleased(this: ParsedSocket): void {
  if (this.server) released.get(this.server)?.delete(this);
}

function listenerNamed(socket: Socket, event: string, name: string): ((...args: unknown[]) => void) | undefined {
  const all = socket.listeners(event) as Array<(...args: unknown[]) => void>;
  return all.find((f) => f.name === name);
}

/**
 * Releases the parser of `res`'s connection if it can be done safely: the
 * head is out, the request read whole, nothing pipelined behind it, and
 * node's listeners are the ones expected. Call it outside node's parsing of
 * the request (a later turn): the parser must not be freed while it runs.
 * True when released.
 */
export function releaseParser(res: ServerResponse): boolean {
  if (freeParser === undefined || !res.headersSent || res.writableEnded) return false;
  const socket = res.socket as ParsedSocket | null;
  const req = res.req;
  const parser = socket?.parser;
  if (!socket || socket.destroyed || !parser || parser.incoming !== req || !req.complete) return false;
  if (socket.listeners('data').length !== 1) return false;
  const onData = listenerNamed(socket, 'data', NODE_DATA_LISTENER);
  const onEnd = listenerNamed(socket, 'end', NODE_END_LISTENER);
  if (!onData || !onEnd) return false;
  socket.removeListener('data', onData);
  socket.removeListener('end', onEnd);
  freeParser(parser, req, socket);
  // Whatever the client sends from here is read and dropped, so its FIN is still seen.
  socket.on('data', discardBytes);
  socket.on('end', endOnFin);
  if (socket.server) {
    let set = released.get(socket.server);
    if (!set) released.set(socket.server, (set = new Set()));
    set.add(socket);
    socket.on('close', forgetReleased);
  }
  return true;
}

/** The open connections of `server` whose parser was released (they are not in node's own list). */
export function releasedConnections(server: Server): readonly Socket[] {
  return [...(released.get(server) ?? [])];
}

/**
 * The hono environment of every route: the Node request and response are
 * reachable (the stream routes write to them), over HTTP/1.1 or, through the
 * compatibility API, HTTP/2.
 */
import type { Http2Bindings, HttpBindings } from '@hono/node-server';

export type AppEnv = { Bindings: HttpBindings | Http2Bindings };

/** The hono environment of every route: the Node request and response are reachable (the stream route writes to the socket). */
import type { HttpBindings } from '@hono/node-server';

export type AppEnv = { Bindings: HttpBindings };

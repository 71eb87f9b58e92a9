#!/usr/bin/env node
/** `pollcast` / `npm start`: flags and environment → config → server, with a graceful stop on SIGTERM/SIGINT. */
import { readFileSync } from 'node:fs';
import { applyFlags, ConfigError, helpText, loadConfig, tokenAuthConfigured } from './config.ts';
import { createLogger, flushLog } from './log.ts';
import { startPollcast } from './server.ts';
import { applyRuntimeFlags } from './runtime-flags.ts';

// Before anything calls the upstream: the flags decide how its HTTP parser is compiled.
applyRuntimeFlags();

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(helpText());
  process.exit(0);
}
if (args.includes('--version') || args.includes('-v')) {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  console.log(pkg.version);
  process.exit(0);
}

let config;
try {
  config = loadConfig(applyFlags(args, process.env));
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`pollcast: configuration error: ${err.message}`);
    process.exit(2);
  }
  throw err;
}

/** Longest wait for the last log lines to reach stdout before exiting without them. */
const FINAL_LOG_FLUSH_MS = 1000;
/** Time kept between the end of that wait and the stop's hard deadline. */
const FLUSH_MARGIN_MS = 250;

/** Why the server could not listen, as one line naming the variable to change; undefined for any other failure. */
function listenFailure(err: unknown, host: string, port: number): string | undefined {
  const { code, syscall, message } = err as NodeJS.ErrnoException;
  if (syscall !== 'listen' && syscall !== 'getaddrinfo') return undefined;
  switch (code) {
    case 'EADDRINUSE':
      return `PORT: port ${port} is already in use (HOST ${host})`;
    case 'EACCES':
      return `PORT: not allowed to listen on port ${port} (HOST ${host}); ports below 1024 need privileges`;
    case 'EADDRNOTAVAIL':
      return `HOST: ${host} is not an address of this machine`;
    case 'EAFNOSUPPORT':
      return `HOST: ${host} is of an address family this machine does not support`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
      return `HOST: the host name ${host} does not resolve (${code})`;
    default:
      return `HOST ${host}, PORT ${port}: cannot listen there: ${message}`;
  }
}

const log = createLogger(config.logLevel);

// Installed before anything is announced: the "listening" line is written at once, and a process manager that
// stops pollcast the moment it sees it must meet the graceful stop, never the default (a kill by the signal).
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: ending streams so clients reconnect elsewhere');
    const deadline = performance.now() + config.shutdownTimeoutSeconds * 1000;
    // The contract promises an exit within 10 s whatever hangs. Nothing on the stop path blocks
    // the event loop (logging included: src/log.ts), so this timer always gets to fire.
    setTimeout(() => {
      log.error({ shutdownTimeoutSeconds: config.shutdownTimeoutSeconds }, 'graceful stop did not finish within SHUTDOWN_TIMEOUT_SECONDS; exiting anyway');
      process.exit(1);
    }, config.shutdownTimeoutSeconds * 1000).unref();
    // A signal during the start stops what the start built once it is built.
    void starting.then(async (started) => {
      await started?.close();
      log.info('stopped');
      // A stop that finished exits 0: the flush (it waits its whole bound on a stdout nobody reads) ends before the timer above.
      await flushLog(log, Math.max(0, Math.min(FINAL_LOG_FLUSH_MS, deadline - performance.now() - FLUSH_MARGIN_MS)));
      process.exit(0);
    });
  });
}

const starting = startPollcast(config, { log }).catch(async (err: unknown) => {
  const reason = listenFailure(err, config.host, config.port);
  // A bad address is the operator's to fix: one line, like a configuration error; anything else keeps its stack.
  if (reason) console.error(`pollcast: cannot listen: ${reason}`);
  else log.fatal({ err }, 'could not start');
  await flushLog(log, FINAL_LOG_FLUSH_MS);
  process.exit(1);
});
const server = await starting;
if (server && !stopping) {
  const authMode = [tokenAuthConfigured(config) ? 'tokens' : undefined, config.auth === 'upstream' ? 'upstream keys' : undefined].filter(Boolean).join(' + ') || 'none';
  // The URL is one to connect to (127.0.0.1 for a wildcard address); the address it listens on is said beside it.
  const everywhere = config.host === '0.0.0.0' || config.host === '::';
  log.info({ url: server.url, host: config.host, upstream: server.simulator ? 'built-in simulator (demo)' : config.upstreamUrl, auth: authMode }, `pollcast listening on ${server.url}${everywhere ? ` (every address: HOST=${config.host})` : ''}${server.simulator ? ` (demo page: ${server.url}/)` : ''}`);
  if (config.auth === 'none' && tokenAuthConfigured(config)) {
    // The safe reading of two settings that contradict each other: tokens are still checked.
    log.warn('AUTH=none is ignored: AUTH_JWT_SECRET or AUTH_JWKS_URL is set, so every subscriber needs a token; unset one of them');
  }
  if (process.env.FLY_APP_NAME && config.trustProxy === 'none') {
    // Behind Fly's proxy every client arrives from the proxy's address: per-IP limits would be shared by all.
    log.warn('running on Fly.io with TRUST_PROXY unset: per-IP limits count every client as the proxy; set TRUST_PROXY=fly');
  }
}

# syntax=docker/dockerfile:1
# pollcast: build with the full toolchain, run with production dependencies only.
#   docker build -t pollcast .
#   docker run --rm -p 8080:8080 pollcast                      # demo mode (built-in simulator)
#   docker run --rm -p 8080:8080 -e UPSTREAM_URL=https://api.example.com/api/v2 \
#     -e UPSTREAM_API_KEY=... -e AUTH_JWT_SECRET=... pollcast
# test/ops/dockerfile.test.ts replays this file's COPY/RUN/ENV/CMD lines without a Docker engine.

FROM node:24-slim AS build
WORKDIR /app
# Manifests first: the dependency layer stays cached until they change.
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:24-slim AS runtime
ENV NODE_ENV=production PORT=8080
WORKDIR /app
COPY package.json package-lock.json ./
# No install script is needed (no native modules), so none is allowed to run; the npm cache
# lives in a BuildKit cache mount, not in the image.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund
COPY --from=build /app/dist ./dist
COPY public ./public
# Files stay owned by root: the process (user "node", uid 1000, from the base image) cannot rewrite its own code.
USER node
EXPOSE 8080
# The young-generation cap of src/runtime-flags.ts (memory per idle stream); test/ops checks they agree.
ENV NODE_OPTIONS="--max-semi-space-size=16"
# slim has no curl; Node's fetch does the probe. 127.0.0.1 answers for HOST=0.0.0.0 and HOST=::.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# pollcast ends its streams on SIGTERM (clients resume elsewhere by Last-Event-ID) and exits within
# SHUTDOWN_TIMEOUT_SECONDS (8 s); give `docker stop -t` at least 10 s.
STOPSIGNAL SIGTERM
CMD ["node", "dist/cli.js"]

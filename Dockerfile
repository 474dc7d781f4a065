# One image for every process of the product: an event-store node (default) or the projector.
# Build: docker build -t raft-event-store .   Run: see docker-compose.yml.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json nest-cli.json ./
# Only the product's sources: tsconfig.build.json leaves out specs, testing folders, test/, bench/ and tools/.
COPY apps ./apps
COPY libs ./libs
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Raft log, metadata, snapshots and event files live here (mount a volume).
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 2113 2114 2150
# Inside a container the node listens on all interfaces; RAFT_ADDR is then not loopback, so
# CLUSTER_SECRET is required (the node refuses to start without it), and so are API tokens (TOKENS_FILE or
# API_TOKENS; AUTH=off opts out, unsafe) because HTTP_ADDR is not loopback either. /health needs no token.
ENV HTTP_ADDR=0.0.0.0:2113 RAFT_ADDR=0.0.0.0:2114
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s \
  CMD node -e "fetch('http://127.0.0.1:2113/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Memory of a node (docs/ARCHITECTURE.md): glibc returns freed large buffers at once and keeps two arenas;
# V8's young generation is capped at 2 x 8 MiB; --expose-gc lets the node collect the garbage of its start-up
# replay once caught up. Keep in step with tools/node-runtime.json.
ENV MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072
CMD ["node", "--max-semi-space-size=8", "--expose-gc", "dist/apps/event-store/src/main.js"]

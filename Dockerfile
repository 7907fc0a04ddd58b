# syntax=docker/dockerfile:1.7
#
# imagescan-operator image: the operator as one bundled ES module (scripts/build-operator.ts) + the
# Trivy CLI on a distroless Node.js 24 base (no shell, no package manager, no node_modules), running
# as the numeric non-root user 65532.
#
# Build:   docker buildx build -t imagescan-operator:dev .
# The base images are written out in their FROM lines, not behind ARGs, so that Renovate
# (renovate.json) pins each one by digest and keeps it current; test/workflows checks that every FROM
# is pinned or covered by that rule. Never use Trivy 0.69.4, 0.69.5 or 0.69.6: those releases were
# malicious (CVE-2026-33634); renovate.json never proposes them and the test refuses them.

FROM aquasec/trivy:0.74.0 AS trivy

# Build stage: dev dependencies + esbuild. Debian (glibc) rather than alpine because the `node` npm
# dev dependency installs a glibc Node binary that npm scripts put first on PATH. The bundle holds the
# production dependencies' code, pinned by the lockfile; their licences are in dist/.
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/build-operator.ts ./scripts/
COPY src ./src
RUN npm run build \
 && mkdir -p /out/var/cache/trivy

FROM gcr.io/distroless/nodejs24-debian13:nonroot
LABEL org.opencontainers.image.title="imagescan-operator" \
      org.opencontainers.image.description="Keeps every running image scanned with Trivy; ImageScanReports and Prometheus metrics" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /app
COPY --chown=0:0 --from=build /src/dist ./dist
COPY --chown=0:0 --from=trivy /usr/local/bin/trivy /usr/local/bin/trivy
# Writable places exist even without the Deployment's emptyDirs (e.g. `docker run`); in the cluster
# the root filesystem is read-only and these paths are emptyDir mounts.
COPY --chown=65532:65532 --from=build /out/var/cache/ /var/cache/
# Trivy and Node write only below HOME, TMPDIR and the cache dir; all point at writable mounts.
ENV NODE_ENV=production \
    PATH=/usr/local/bin:/usr/bin:/bin \
    HOME=/tmp \
    TMPDIR=/tmp \
    XDG_CACHE_HOME=/var/cache
# glibc malloc gives blocks of 32 KiB and more (socket reads, request bodies, Trivy reports) their own
# mapping, returned to the kernel when freed. Left alone it raises that threshold after the first large
# free, and the freed middle of its heap stays resident: after the bench's rescan malloc's heap held
# 82-88 MiB while 14 MiB of buffers were in use; with this, 21 MiB (bench/README.md#performance).
ENV MALLOC_MMAP_THRESHOLD_=32768
USER 65532:65532
EXPOSE 8080
# Distroless nodejs keeps node at /nodejs/bin/node (and its default entrypoint is node itself);
# the absolute path makes the entrypoint independent of PATH. A young generation of at most 4 MiB
# per semi-space (V8 sizes it for the machine, not the container): in the 10,000-pod bench peak RSS
# 620 -> 484 MiB at 8 MiB, and 214-219 -> 206 MiB at 4 MiB, at the same CPU. After a full GC the old
# generation may grow by 35% of what survived before the next one, not by the ~50% V8 picks for
# itself: freed pages stay resident in V8's page pool, so RSS follows the highest heap. Peak RSS
# 206-210 -> 182 MiB, cold start unchanged (27.9 s), 1-3 CPU-seconds more in the rescan and churn
# (bench/README.md). --expose-gc lets the operator run V8's memory-reducing collection once it is idle
# after a burst of work (src/idle-memory-release.ts): V8's own memory reducer does not run in an idle
# Node process, which then keeps the high-water mark of its heap. The bench starts the operator with the
# flags written here.
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=4", "--heap-growing-percent=35", "--expose-gc", "/app/dist/main.mjs"]

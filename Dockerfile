# syntax=docker/dockerfile:1
# zfs-sync witness server: multi-stage build, non-root runtime (uid 1001).
#
#   docker build -t zfs-sync .
#   docker run -p 8000:8000 -v zfs-sync-data:/data -v ./logs:/logs zfs-sync
#
# Every step below was also run outside Docker on the build machine (see
# zfs-sync-http/README.md, "Deployment: what was verified how").

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# The workspace manifests and sources (see .dockerignore for what is left out).
COPY . .
RUN cargo build --release --locked -p zfs-sync-http \
 && install -D -m 0755 target/release/zfs-sync-server /out/zfs-sync-server

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 1001 zfs-sync \
 && useradd --system --uid 1001 --gid 1001 --home-dir /data --shell /usr/sbin/nologin zfs-sync \
 && mkdir -p /config /data /logs \
 && chown 1001:1001 /data /logs
COPY --from=build /out/zfs-sync-server /usr/local/bin/zfs-sync-server
COPY config/zfs_sync.example.yaml /config/zfs_sync.example.yaml

# Defaults for the container; a mounted /config/zfs_sync.yaml and ZFS_SYNC_* variables
# override them (environment wins over the file).
ENV ZFS_SYNC_HOST=0.0.0.0 \
    ZFS_SYNC_PORT=8000 \
    ZFS_SYNC_DATABASE_URL=sqlite:///data/zfs_sync.db \
    ZFS_SYNC_LOG_DIR=/logs \
    ZFS_SYNC_LOG_FORMAT=json

USER 1001:1001
WORKDIR /data
VOLUME ["/data", "/logs"]
# /config is mounted read-only by docker-compose.yml (./config:/config:ro).
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/api/v1/health/live || exit 1
ENTRYPOINT ["/usr/local/bin/zfs-sync-server"]
CMD ["serve"]

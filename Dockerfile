# syntax=docker/dockerfile:1

# Tollgate: one static binary on a distroless base.
#
#   docker build -t tollgate .
#   docker run --rm -p 127.0.0.1:8080:8080 -v tollgate-data:/data \
#     -e TOLLGATE_TRUSTED_PROXIES=172.16.0.0/12 tollgate
#
# Inside the container, requests arrive from the Docker bridge, not from loopback.
# Plain HTTP therefore needs the bridge listed as a trusted proxy (local use only).
# Otherwise, pass --tls-cert/--tls-key.
#
# See docs/operations.md and docker-compose.yml.

############################
# Build stage
############################
FROM golang:1.26-bookworm AS build

WORKDIR /src

# Pure-Go build: without cgo, Pebble uses its pure-Go zstd.
# The official image sets GOTOOLCHAIN=local. With auto, a stale local golang:1.26 image
# older than go.mod's go line fetches the required toolchain instead of failing.
ENV CGO_ENABLED=0 \
    GOTOOLCHAIN=auto

# Dependencies first, so source edits do not invalidate the module download layer.
COPY go.mod go.sum ./
# The SDK module is replaced by its directory (go.mod): its go.mod comes too.
COPY sdk/go.mod sdk/go.sum ./sdk/
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/tollgate ./cmd/tollgate

# The volume mount point must belong to the nonroot user (uid/gid 65532):
# a fresh named volume takes the ownership of the image directory it is
# mounted on, and distroless has no shell to chown it later.
RUN mkdir -p /out/data

############################
# Runtime stage
############################
FROM gcr.io/distroless/static-debian12:nonroot

# distroless/static already ships CA certificates (/etc/ssl/certs) and tzdata,
# needed for HTTPS callback delivery and TLS to NATS.
COPY --from=build /out/tollgate /usr/local/bin/tollgate
COPY --from=build --chown=65532:65532 /out/data /data

USER nonroot

# Every subcommand (serve, rebuild, ...) finds the data dir without a flag.
ENV TOLLGATE_DATA_DIR=/data

# HTTP API (OAuth endpoints and management API).
EXPOSE 8080

# Data dir: <data-dir>/nats (embedded JetStream store, single-node mode only)
# and <data-dir>/projections (Pebble read models).
VOLUME ["/data"]

ENTRYPOINT ["/usr/local/bin/tollgate"]
CMD ["serve", "--data-dir=/data", "--listen=0.0.0.0:8080"]

# syntax=docker/dockerfile:1.7
#
# inferd — CPU image for CPU node pools.
#
#   docker build -t inferd:cpu .
#   docker run --rm -p 8080:8080 -v inferd-cache:/data inferd:cpu
#
# Conventions shared with Dockerfile.cuda (keep them in step):
#   * multi-stage: cargo-chef caches the dependency build in its own layer;
#   * runs as the unprivileged user 10001 and writes only to /data (the Hugging Face
#     cache, HF_HOME=/data/hf) and /tmp, so it works with readOnlyRootFilesystem;
#   * the model is NOT baked in: it is fetched into /data at first start, or mounted
#     there. For air-gapped clusters see "Baking the model in" at the end of this file.

ARG RUST_VERSION=1.95.0
ARG DEBIAN_SUITE=bookworm
ARG CARGO_CHEF_VERSION=0.1.78

# ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_SUITE} AS chef
ARG CARGO_CHEF_VERSION
# The slim image lacks a C toolchain; onig_sys (tokenizers) compiles C; build.rs runs protoc.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

# ---------------------------------------------------------------------------
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

# ---------------------------------------------------------------------------
FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is reused until Cargo.toml/Cargo.lock change.
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin inferd \
 && install -D -m 0755 target/release/inferd /out/inferd

# ---------------------------------------------------------------------------
FROM debian:${DEBIAN_SUITE}-slim AS runtime
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="inferd" \
      org.opencontainers.image.description="Sentence-embedding inference microservice (CPU build)" \
      org.opencontainers.image.source="https://github.com/inferd/inferd" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

# curl is for HEALTHCHECK only; ca-certificates for Hugging Face Hub over TLS.
# Versions are left to the pinned Debian suite (security updates apply on rebuild).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 inferd \
 && useradd --system --uid 10001 --gid inferd --home-dir /data --no-create-home --shell /usr/sbin/nologin inferd \
 && install -d -o inferd -g inferd -m 0750 /data /data/hf

WORKDIR /opt/inferd
COPY --from=builder /out/inferd /usr/local/bin/inferd
# The bundled model manifests (the default --model is models/all-MiniLM-L6-v2.toml).
COPY models/*.toml /opt/inferd/models/

ENV HF_HOME=/data/hf \
    INFERD_LISTEN=0.0.0.0:8080 \
    INFERD_DEVICE=cpu \
    INFERD_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080 8081
USER 10001:10001

# Model download + warm-up can take minutes on a cold cache: start-period covers it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=300s --retries=3 \
  CMD ["curl", "--fail", "--silent", "--show-error", "--max-time", "2", "-o", "/dev/null", "http://127.0.0.1:8080/readyz"]

ENTRYPOINT ["/usr/local/bin/inferd"]
CMD ["serve"]

# ---------------------------------------------------------------------------
# Baking the model in (air-gapped clusters)
#
# Download a pinned revision on a connected machine, then build a derived image:
#
#   huggingface-cli download sentence-transformers/all-MiniLM-L6-v2 \
#       --revision <commit-sha> --local-dir model/all-MiniLM-L6-v2
#   cat > Dockerfile.baked <<'EOF'
#   FROM ghcr.io/inferd/inferd:<tag>
#   COPY --chown=10001:10001 model/all-MiniLM-L6-v2 /opt/inferd/model
#   ENV INFERD_MODEL=/opt/inferd/model HF_HUB_OFFLINE=1
#   EOF
#   docker build -f Dockerfile.baked -t registry.internal/inferd:<tag>-minilm .
#
# The model then lives in the read-only image layer, /data stays a scratch cache, and
# HF_HUB_OFFLINE=1 guarantees the pod never tries the network.

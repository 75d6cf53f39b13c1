# syntax=docker/dockerfile:1
# The `yubin` image: one binary, every role (`yubin meta`, `yubin imap`, `yubin lmtp`, `yubin dev`).
# Build from the repository root: docker build -t yubin:dev .

# --- build stage: the release binary from the locked workspace --------------------------------
FROM rust:1.95-slim-bookworm AS build
# aws-lc-sys (the S3 client's TLS backend) builds C code; protoc is vendored, nothing else needed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p yubin \
    && install -D -m 0755 target/release/yubin /out/yubin

# --- runtime stage: the binary and CA certificates only, run as an unprivileged user ----------
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 yubin \
    && useradd --system --uid 10001 --gid yubin --home-dir /var/lib/yubin --create-home \
       --shell /usr/sbin/nologin yubin
COPY --from=build /out/yubin /usr/local/bin/yubin
USER 10001:10001
WORKDIR /var/lib/yubin
# IMAP, IMAPS, LMTP, HTTP (health, metrics, admin API), gRPC (meta).
EXPOSE 1143 1993 2424 8080 50051
ENTRYPOINT ["/usr/local/bin/yubin"]
# The role and its flags come from the caller (compose `command:`, Kubernetes `args:`), e.g.
#   docker run yubin:dev imap --meta-url http://meta:50051 --s3-bucket mail ...
CMD ["--help"]

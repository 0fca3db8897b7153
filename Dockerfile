# syntax=docker/dockerfile:1
#
# certmint container image.
#   docker build --build-arg GIT_COMMIT="$(git rev-parse HEAD)" -t certmint:dev .
# The runtime image has the binary and nothing else (no shell, no package manager) and
# runs as the distroless "nonroot" user (65532).

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# The builder must have a C compiler: aws-lc-sys (aws-lc-rs, certmint's crypto provider)
# compiles AWS-LC from its crate sources with the `cc` crate. On x86_64/aarch64 Linux that
# needs gcc (or clang) only: no cmake, Go or bindgen. The full rust:*-bookworm image has
# gcc, g++ and make; rust:*-slim has gcc too. The binary links AWS-LC statically, so the
# runtime image needs nothing beyond glibc and libgcc_s.
FROM ${RUST_IMAGE} AS builder
WORKDIR /src
# .git is not in the build context: the commit reaches `certmint --version` through this
# variable, read at compile time.
ARG GIT_COMMIT=unknown
ENV CERTMINT_GIT_COMMIT=${GIT_COMMIT} \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0
COPY . .
# The registry and target caches only speed up rebuilds; the binary is copied out of the
# cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin certmint \
 && install -D -m 0755 target/release/certmint /out/certmint \
 && /out/certmint --version

FROM ${RUNTIME_IMAGE}
ARG GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="certmint" \
      org.opencontainers.image.description="Certificate authority for Kubernetes workloads (Linkerd identity API)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
COPY --from=builder /out/certmint /usr/local/bin/certmint
USER 65532:65532
# 8080: gRPC (Identity, health, reflection); 9990: admin HTTP (/live, /ready, /metrics).
EXPOSE 8080 9990
ENTRYPOINT ["/usr/local/bin/certmint"]
CMD ["serve", "--config", "/etc/certmint/config.yaml"]

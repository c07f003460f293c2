# syntax=docker/dockerfile:1
# The ecsrun-controller image: a static-ish release binary on distroless (no shell, no package manager),
# running as the distroless "nonroot" user (65532).
#
# The build stage runs what CI runs (fmt, clippy, unit tests), so the image cannot be built from code CI
# would reject. The e2e tier needs Go, Python and loopback servers and stays in CI (hack/test).

FROM rust:1.95-bookworm AS build
# The build context holds no .git (.dockerignore): pass the commit for --version and ecsrun_build_info.
ARG ECSRUN_COMMIT=""
WORKDIR /src
COPY . .
RUN rustup component add rustfmt clippy \
 && cargo fmt --all --check \
 && cargo clippy --workspace --all-targets --locked -- -D warnings \
 && cargo test -p ecsrun --locked \
 && cargo build --release --locked -p ecsrun --bin ecsrun-controller

# glibc + CA certificates, nothing else. The binary links only glibc (aws-lc and rustls are built in).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/ecsrun-controller /usr/local/bin/ecsrun-controller
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ecsrun-controller"]

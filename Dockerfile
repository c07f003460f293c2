# syntax=docker/dockerfile:1
# The ecsrun-controller image: the release binary FROM scratch with the shared libraries it links, CA
# certificates and a non-root user (65532), assembled by hack/image-rootfs: no shell, no package manager.
# hack/image builds the same runtime stage with podman from a locally built binary.
#
# Dependencies build in a layer of their own (cargo-chef): a change to ecsrun's sources rebuilds only the
# workspace's crates. The image build runs no tests and no lints; CI (hack/test: fmt, clippy -D warnings,
# the unit and end-to-end tiers) gates what reaches main, from which images are built.

FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /src

# The dependency graph alone (Cargo.toml, Cargo.lock and the crates' layout), not the sources.
FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=planner /src/recipe.json recipe.json
# Cached until Cargo.toml or Cargo.lock change.
RUN cargo chef cook --release --locked -p ecsrun --bin ecsrun-controller --recipe-path recipe.json
COPY . .
# The build context holds no .git (.dockerignore): pass the commit for --version and ecsrun_build_info.
# Declared here so that a new commit does not invalidate the dependency layer.
ARG ECSRUN_COMMIT=""
RUN cargo build --release --locked -p ecsrun --bin ecsrun-controller

# glibc + CA certificates, nothing else. The binary links only glibc (aws-lc and rustls are built in).
FROM build AS rootfs
RUN hack/image-rootfs target/release/ecsrun-controller /rootfs

FROM scratch
COPY --from=rootfs /rootfs/ /
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ecsrun-controller"]

# Sourced by hack/build, hack/test and hack/sim: how the one build is compiled. Every cargo command that
# reuses that build must see the same, or the workspace's crates are compiled again.
# - clippy lints the workspace's crates as they compile: hack/clippy-rustc (clippy-driver, every warning an
#   error) is cargo's wrapper for them; the dependencies are compiled by plain rustc.
# - No incremental compilation: a clean clone (CI's) compiles the workspace's crates once, and writing the
#   incremental state cost more than it could save.
export RUSTC_WORKSPACE_WRAPPER="$root/hack/clippy-rustc"
export CARGO_INCREMENTAL=0

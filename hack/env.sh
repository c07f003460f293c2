# Sourced by hack/test, hack/bench and hack/demo: where builds go.
# Compiled dependencies are kept per user, not per clone, so a fresh clone (CI's too) compiles only the
# workspace's own crates; CARGO_TARGET_DIR still wins when set.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ecsrun/target}"

# Sourced by hack/test, hack/bench, hack/faults and hack/demo: where builds go.
# Compiled dependencies are kept per user, not per clone, so a fresh clone (CI's too) compiles only the
# workspace's own crates; CARGO_TARGET_DIR still wins when set.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ecsrun/target}"

# Two checkouts sharing that directory name their workspace crates alike (cargo hashes a path
# dependency by its place in the workspace), so one checkout's build can pass for the other's and tests
# would run code that is not in the tree. When the checkout changes, its own crates are rebuilt.
ecsrun_checkout="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mkdir -p "$CARGO_TARGET_DIR"
if [ "$(cat "$CARGO_TARGET_DIR/.ecsrun-checkout" 2>/dev/null)" != "$ecsrun_checkout" ]; then
  if [ -d "$CARGO_TARGET_DIR/debug" ] || [ -d "$CARGO_TARGET_DIR/release" ]; then
    (cd "$ecsrun_checkout" && cargo clean --quiet -p ecsrun-api -p ecsrun -p ecsrun-testbed 2>/dev/null || true)
  fi
  echo "$ecsrun_checkout" > "$CARGO_TARGET_DIR/.ecsrun-checkout"
fi

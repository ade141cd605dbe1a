#!/usr/bin/env bash
# The fuzzing step of CI: replays the committed seeds and regression inputs, builds every
# cargo-fuzz target, and runs each for a short, fixed time (about 2.3 minutes of fuzzing in all,
# plus a one-time `cargo install cargo-fuzz` and the instrumented build). Run from anywhere:
# `bash fuzz/ci.sh`. Long campaigns: see fuzz/README.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# cargo-fuzz passes nightly-only flags (-Zsanitizer=...); this lets the stable toolchain take them.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: installing it from crates.io"
    cargo install cargo-fuzz --locked
fi
cargo fuzz --version

# Every seed (fuzz/corpus/*/seed-*) and every minimized finding (fuzz/regressions/*/*) through its
# harness, uninstrumented: fast, and independent of libFuzzer.
cargo test --manifest-path fuzz/Cargo.toml

# The instrumented build of every target. Without AddressSanitizer: the code under test is safe
# Rust (the mapping, mtrdb's only unsafe code, is never used on the in-memory storage), and ASan
# would cost 3-4x in executions per second (see fuzz/README.md).
cargo fuzz build --sanitizer none

# Seconds of fuzzing per target, from the committed seeds only (a local campaign's corpus would
# make the initial pass long), with the dictionary where there is one. New corpus entries go to
# a scratch directory, so the checkout is left as it was; a crash fails this script (and leaves
# its input in fuzz/artifacts/NAME/).
declare -A seconds=([page]=20 [log_scan]=40 [open_garbage]=40 [crash_ops]=40)
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in page log_scan open_garbage crash_ops; do
    echo "==== fuzz $target for ${seconds[$target]} s ===="
    mkdir -p "$scratch/$target"
    cp fuzz/corpus/"$target"/seed-* "$scratch/$target/"
    dict=()
    if [[ -f "fuzz/dict/$target.dict" ]]; then
        dict=("-dict=fuzz/dict/$target.dict")
    fi
    cargo fuzz run --sanitizer none "$target" "$scratch/$target" -- \
        -max_total_time="${seconds[$target]}" -timeout=60 -print_final_stats=1 "${dict[@]}"
done

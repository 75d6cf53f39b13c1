#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time on the stable toolchain (the test script calls
# it, so CI fuzzes on every run). The targets are built with libFuzzer's coverage instrumentation
# passed as plain -C flags, which stable rustc accepts; cargo-fuzz (nightly) builds the same
# targets with sanitizers when one is at hand.
#
#   scripts/fuzz.sh                  # every target, YUBIN_FUZZ_SECONDS each (default 45)
#   scripts/fuzz.sh lmtp mime        # some targets
#   YUBIN_FUZZ_SEED=7 scripts/fuzz.sh
#
# The seed corpus is kept in fuzz/corpus/<target>/ (commit an input there to keep it); inputs the
# run discovers go to a scratch directory, not into the repository. A crash fails the run and
# leaves the input in fuzz/artifacts/<target>/ with a base64 copy printed for the log. The seed
# is fixed by default so that a run is reproducible; change it to explore further.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${YUBIN_FUZZ_SECONDS:-45}"
seed="${YUBIN_FUZZ_SEED:-1}"
targets=("$@")
((${#targets[@]})) || targets=(receiver lmtp mime)

host=$(rustc -vV | sed -n 's/^host: //p')
# --target keeps the instrumentation off build scripts and proc macros; debug assertions and
# overflow checks come from the release profile in fuzz/Cargo.toml.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares"
cargo build --release --locked --target "$host" --bins

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t" "artifacts/$t"
    echo "fuzz: $t for ${seconds}s (seed $seed)"
    # -rss_limit_mb bounds what one input may make the code allocate; -timeout flags an input that
    # takes too long (a quadratic path, say) as a failure.
    if ! "target/$host/release/$t" -seed="$seed" -max_total_time="$seconds" -timeout=10 \
        -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/" "$scratch/$t" "corpus/$t" 2>"$scratch/$t.log"; then
        status=1
        tail -n 60 "$scratch/$t.log"
        for f in "artifacts/$t"/*; do
            [ -f "$f" ] || continue
            echo "fuzz: $t failing input $f (base64):"
            base64 -w 0 "$f"
            echo
        done
    else
        grep -E '^stat::number_of_executed_runs|^#[0-9]+.*DONE' "$scratch/$t.log" | tail -n 2 || true
    fi
done
exit "$status"

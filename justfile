# sop task runner (https://github.com/casey/just). Every recipe is a plain cargo command too.

# The main job: the demo on the embedded default.
demo *ARGS:
    cargo run --release -p sop-cli -- demo {{ARGS}}

# Everything CI runs.
test:
    cargo test --workspace -j2

# Quick single-process figures (insert, read, scan, delete, single-item commits).
quick-bench N="100000" SLOT="64":
    cargo run --release -p sop --example quick_bench -- {{N}} {{SLOT}}

# Builds the Rust plugins in plugins/ into target/plugins/<name>.wasm (tests do this too).
plugins:
    cargo run -q -p sop-plugin-build

# Builds the Python and JavaScript plugins (installs componentize-py / componentize-js into
# target/polyglot) and runs their tests.
polyglot:
    bash plugins/polyglot/build.sh
    cargo test --workspace -j2 --test polyglot -- --ignored

# What plugins cost (release build).
bench-plugins *ARGS:
    cargo run --release -p sop-cli -- bench plugins {{ARGS}}

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

ci:
    bash .ci/run

# The long kill -9 soak of the swarm (1,000+ kills); CI runs 200.
soak KILLS="1000":
    SOP_KILLS={{KILLS}} cargo test --release -p sop-tests --test swarm_crash -- --nocapture

# The swarm history tests run for SECS each instead of CI's few seconds (threads, idle threads,
# maintain() callers, mixed options, kill -9 and a Redis outage; strict serializability checked).
soak-history SECS="600":
    SOP_SOAK_SECS={{SECS}} cargo test --release -p sop-tests --test swarm --test swarm_crash -- --nocapture

#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test of every crate.
# Large suites from ../shared/ are used when present; tests say SKIPPED when they are not.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh   # the default model, for the real-model tests (no-op when present)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --all-targets
cargo test --workspace --doc

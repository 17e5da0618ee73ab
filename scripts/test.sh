#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test of every crate, and the kernels built
# for aarch64 and run under qemu (NEON with and without dotprod).
# Large suites from ../shared/ are used when present; tests say SKIPPED when they are not.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-model.sh   # the default model, for the real-model tests (no-op when present)
# NVRTC for the CUDA kernels' PTX-compile test: the library `pip install nvidia-cuda-nvrtc-cu12`
# installs (the test also asks python3 itself, and says SKIPPED when there is none).
if [ -z "${NANORUN_NVRTC_LIB:-}" ]; then
  NANORUN_NVRTC_LIB="$(python3 -c 'import nvidia.cuda_nvrtc as m, os; print(os.path.join(list(m.__path__)[0], "lib"))' 2>/dev/null || true)"
  export NANORUN_NVRTC_LIB
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --all-targets
cargo test --workspace --doc
# The CUDA backend behind its feature: lints, and the whole CUDA forward pass on the CPU
# emulation of a device against the CPU backend (on a GPU machine the GPU tests run too).
cargo clippy -p nanorun -p nanorun-cli --features cuda --all-targets --quiet -- -D warnings
cargo test -p nanorun --features cuda --test cuda_backend
# NEON: needs Debian's cross toolchain and qemu-user, which the script installs (as root).
if [ "$(id -u)" = 0 ] || command -v qemu-aarch64 >/dev/null; then
  scripts/test-aarch64.sh -p nanorun-kernels
  QEMU_CPU=cortex-a72 scripts/test-aarch64.sh -p nanorun-kernels --lib
else
  echo "SKIPPED aarch64/NEON kernel tests: installing the cross toolchain needs root"
fi

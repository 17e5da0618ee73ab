#!/usr/bin/env bash
# (Copied from the team's shared scripts so that CI runs the NEON kernels under qemu from a fresh clone.)
# Cross-build the current cargo workspace's tests for aarch64-unknown-linux-gnu and run them
# under qemu-user (default -cpu max: NEON, dotprod, i8mm, fp16, bf16, SVE/SVE2), on this x86-64
# Debian 12 machine. Toolchain: Debian's rustc-web/cargo-web plus its arm64 std (same version,
# apt keeps them in step); the rustup toolchain has no aarch64 std and cannot get one here.
#
# usage: test-aarch64.sh [CARGO TEST ARGS...]   e.g. test-aarch64.sh -p nanorun-kernels -- --nocapture
#        test-aarch64.sh --install              only install the packages (idempotent)
#        test-aarch64.sh --version              print the toolchain versions in use
#        test-aarch64.sh --clippy [ARGS...]     cargo clippy --target aarch64 (lints cfg(aarch64) code)
#        eval "$(test-aarch64.sh --env)"        then plain `cargo test --target aarch64-unknown-linux-gnu`
#                                               works in that shell (RUSTC/RUSTDOC point at Debian's)
# env:   QEMU_CPU=cortex-a72   NEON without dotprod (test the fallback path); neoverse-n1 = dotprod
#                              without i8mm/SVE; default max
#        AARCH64_TARGET_DIR    build dir (default <workspace target dir>/aarch64-qemu, kept apart
#                              from the host toolchain's builds)
set -euo pipefail

triple=aarch64-unknown-linux-gnu
pkgs=(rustc-web cargo-web libstd-rust-web-dev:arm64 libc6:arm64 libgcc-s1:arm64
      gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)

install_pkgs() {
  local need=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || need+=("$p")
  done
  # The arm64 std must be exactly the version of the amd64 rustc (apt enforces this when both
  # are installed in one go; re-install if something left them apart).
  if [ ${#need[@]} -eq 0 ] && [ "$(dpkg-query -W -f='${Version}' rustc-web)" != \
       "$(dpkg-query -W -f='${Version}' libstd-rust-web-dev:arm64)" ]; then
    need=(rustc-web libstd-rust-web-dev:amd64 libstd-rust-web-dev:arm64)
  fi
  [ ${#need[@]} -eq 0 ] && return 0
  echo "test-aarch64: installing ${need[*]}" >&2
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=300 "${pkgs[@]}" >/dev/null
}

setup_env() {
  export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  # No `-L /usr/aarch64-linux-gnu`: libc6:arm64 (multiarch, needed by the arm64 std package) is
  # installed in /lib/aarch64-linux-gnu, and mixing the cross ld.so from /usr/aarch64-linux-gnu
  # with that libc.so.6 makes every pthread_create spin forever. Plain qemu uses /lib's pair.
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -cpu ${QEMU_CPU:-max}"
  unset QEMU_LD_PREFIX
}

target_dir() {
  if [ -n "${AARCH64_TARGET_DIR:-}" ]; then echo "$AARCH64_TARGET_DIR"; return; fi
  local td
  td=$(/usr/bin/cargo metadata --no-deps --format-version 1 2>/dev/null |
       sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  [ -n "$td" ] || { echo "test-aarch64: not inside a cargo workspace" >&2; exit 2; }
  echo "$td/aarch64-qemu"
}

case "${1:-}" in
  --install) install_pkgs; exit 0 ;;
  --version)
    install_pkgs; /usr/bin/rustc -V; /usr/bin/cargo -V; qemu-aarch64 -version | head -1
    echo "arm64 std: libstd-rust-web-dev:arm64 $(dpkg-query -W -f='${Version}' libstd-rust-web-dev:arm64)"
    exit 0 ;;
  --env)
    install_pkgs; setup_env
    for v in RUSTC RUSTDOC CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER \
             CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER; do
      printf 'export %s=%q\n' "$v" "${!v}"
    done
    td=$(target_dir); printf 'export CARGO_TARGET_DIR=%q\n' "$td"
    exit 0 ;;
esac

if [ "${1:-}" = --clippy ]; then
  shift; pkgs+=(rust-web-clippy); install_pkgs; setup_env; td=$(target_dir)
  # PATH: cargo finds the cargo-clippy subcommand on PATH; rustup's would pick its own driver.
  PATH=/usr/bin:$PATH exec /usr/bin/cargo clippy --target "$triple" --target-dir "$td" "$@"
fi

install_pkgs
setup_env
td=$(target_dir)
echo "test-aarch64: $(/usr/bin/rustc -V), qemu -cpu ${QEMU_CPU:-max}, target dir $td" >&2
# Debian's cargo, not rustup's proxy: no rust-toolchain.toml lookup, same version as its rustc.
exec /usr/bin/cargo test --target "$triple" --target-dir "$td" "$@"

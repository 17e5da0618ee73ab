#!/usr/bin/env bash
# Prompt-processing and generation speed of nanorun beside llama.cpp's llama-bench: same GGUF
# files, same tests, same thread counts, same repetitions, in one run, and the ratios.
#
#   scripts/compare-llama-cpp.sh [-m MODEL.gguf]... [-p 128,512] [-n 64] [-t 1,2] [-r 3]
#                                [-d DEPTH] [-o DIR] [--no-build]
#
# Models: every -m; without one, models/gemma-3-270m-q4_k_m.gguf (scripts/fetch-model.sh) and,
# when it has been made, models/llama-1b-shaped-q4_k_m.gguf (scripts/make-llama-1b.sh).
# For each model, each thread count and each test (ppP for every P of -p, tgN for every N of -n)
# the two tools run back to back, alternating which goes first: `llama-bench -o json` and
# `nanorun bench --json` with only that test, both with -r repetitions (and their defaults
# otherwise: F16 KV cache, llama-bench's batch 2048 / ubatch 512, flash attention auto). So both
# see the machine in the same minutes. The table gives mean ± std tok/s, the ratio
# nanorun / llama.cpp, whether it meets issue 7's targets (tg ≥ 1.10, pp ≥ 1.0), and nanorun's
# weight bytes per decode step × tok/s (GB/s), and that as a fraction of the read bandwidth
# `nanorun bench --bandwidth` measures on as many threads just before its decode test.
# -d DEPTH runs every test after a DEPTH-token prompt has filled the KV cache (both tools' -d;
# the tests are then named `tg64 @ d2048` and so on): decode and prefill at a long context,
# where attention over the cache weighs as much as the weights. -o DIR keeps every raw JSON
# and log there.
#
# llama.cpp is built outside the repo, in NANORUN_REF (default ~/.cache/nanorun-ref; binaries in
# its build/bin), by ../shared/scripts/build-llama-cpp.sh when that exists (idempotent), else by
# the same steps here (llama-cpp-python's sdist from PyPI, vendor/llama.cpp, cmake). The shared
# script enables AVX-512 unconditionally: when this CPU lacks an ISA the build uses (llama-bench
# dies with SIGILL, or CMakeCache.txt says so), the build directory is reconfigured with only the
# ISA extensions /proc/cpuinfo lists (AMX always off) and the binaries are rebuilt.
#
# nanorun: NANORUN if set, used as it is; else target/release/nanorun after
# `cargo build --release -p nanorun-cli` (--no-build: the existing binary).
set -euo pipefail

usage() {
    echo "usage: $0 [-m MODEL.gguf]... [-p 128,512] [-n 64] [-t 1,2] [-r 3] [-d DEPTH] [-o DIR] [--no-build]" >&2
    exit 2
}
die() { echo "error: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MODELS=() PROMPTS=128,512 GENS=64 THREADS=1,2 REPS=3 DEPTH=0 OUTDIR='' BUILD=1
while [ $# -gt 0 ]; do
    case $1 in
        -m) [ $# -ge 2 ] || usage; MODELS+=("$2"); shift 2 ;;
        -p) [ $# -ge 2 ] || usage; PROMPTS=$2; shift 2 ;;
        -n) [ $# -ge 2 ] || usage; GENS=$2; shift 2 ;;
        -t) [ $# -ge 2 ] || usage; THREADS=$2; shift 2 ;;
        -r) [ $# -ge 2 ] || usage; REPS=$2; shift 2 ;;
        -d) [ $# -ge 2 ] || usage; DEPTH=$2; shift 2 ;;
        -o) [ $# -ge 2 ] || usage; OUTDIR=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h | --help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
list_re='^[0-9]+(,[0-9]+)*$'
[[ $PROMPTS =~ $list_re ]] || die "-p wants comma-separated numbers, got '$PROMPTS'"
[[ $GENS =~ $list_re ]] || die "-n wants comma-separated numbers, got '$GENS'"
[[ $THREADS =~ $list_re ]] || die "-t wants comma-separated numbers, got '$THREADS'"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "-r wants a positive number, got '$REPS'"
[[ $DEPTH =~ ^[0-9]+$ ]] || die "-d wants a number, got '$DEPTH'"
command -v python3 >/dev/null || die "python3 not found (it parses the JSON)"

if [ ${#MODELS[@]} -eq 0 ]; then
    default=$ROOT/models/gemma-3-270m-q4_k_m.gguf
    [ -f "$default" ] || die "no $default: run scripts/fetch-model.sh, or give -m MODEL"
    MODELS=("$default")
    if [ -f "$ROOT/models/llama-1b-shaped-q4_k_m.gguf" ]; then
        MODELS+=("$ROOT/models/llama-1b-shaped-q4_k_m.gguf")
    else
        echo "note: no models/llama-1b-shaped-q4_k_m.gguf (scripts/make-llama-1b.sh makes it); gemma only" >&2
    fi
fi
for m in "${MODELS[@]}"; do [ -f "$m" ] || die "no model file $m"; done

TESTS=()
for p in ${PROMPTS//,/ }; do [ "$p" -gt 0 ] && TESTS+=("pp$p"); done
for n in ${GENS//,/ }; do [ "$n" -gt 0 ] && TESTS+=("tg$n"); done
[ ${#TESTS[@]} -gt 0 ] || die "nothing to run: -p and -n are all 0"

# ---- nanorun ----
if [ -n "${NANORUN:-}" ]; then
    :
elif [ "$BUILD" = 1 ]; then
    command -v cargo >/dev/null || die "cargo not found (or set NANORUN=/path/to/nanorun, or --no-build)"
    echo "cargo build --release -p nanorun-cli" >&2
    (cd "$ROOT" && cargo build --release -p nanorun-cli) || die "cargo build failed"
    NANORUN=$ROOT/target/release/nanorun
else
    NANORUN=$ROOT/target/release/nanorun
fi
[ -x "$NANORUN" ] || die "no nanorun binary at $NANORUN (cargo build --release -p nanorun-cli)"

# ---- llama.cpp ----
REF=${NANORUN_REF:-$HOME/.cache/nanorun-ref}
LLAMA_BIN=$REF/build/bin
SHARED_BUILD=$ROOT/../shared/scripts/build-llama-cpp.sh
LLAMA_CPP_PYTHON=0.3.36 # the shared script's version; read from it when it is there
if [ -f "$SHARED_BUILD" ]; then
    v=$(sed -n 's/^ver=\([0-9.]*\).*/\1/p' "$SHARED_BUILD" | head -n 1)
    [ -n "$v" ] && LLAMA_CPP_PYTHON=$v
fi
TARGETS=(llama-bench llama-batched-bench llama-completion llama-simple llama-tokenize llama-quantize)
# scripts/compare-embed-llama-cpp.sh wants llama-embedding: rebuilt too when it was built before.
if [ -e "$LLAMA_BIN/llama-embedding" ]; then TARGETS+=(llama-embedding); fi

cpu_flags=$(grep -m 1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2 || true)
has() { # has FLAG...: every flag is in /proc/cpuinfo
    local f
    for f in "$@"; do [[ " $cpu_flags " == *" $f "* ]] || return 1; done
}
onoff() { if has "$@"; then echo ON; else echo OFF; fi; }
# GGML ISA options matching this CPU (GGML_AVX512 compiles with -mavx512f/cd/vl/dq/bw).
isa_options() {
    echo -DGGML_AVX="$(onoff avx)" -DGGML_AVX2="$(onoff avx2)" -DGGML_FMA="$(onoff fma)" \
        -DGGML_F16C="$(onoff f16c)" -DGGML_BMI2="$(onoff bmi2)" \
        -DGGML_AVX512="$(onoff avx512f avx512cd avx512vl avx512dq avx512bw)" \
        -DGGML_AVX512_VBMI="$(onoff avx512f avx512vbmi)" \
        -DGGML_AVX512_VNNI="$(onoff avx512f avx512_vnni)" \
        -DGGML_AVX512_BF16="$(onoff avx512f avx512_bf16)" -DGGML_AVX_VNNI="$(onoff avx_vnni)" \
        -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
}
# Configure (the shared script's options, this CPU's ISA) and build SRC into $REF/build.
configure_and_build() {
    local src=$1
    command -v cmake >/dev/null || { apt-get update -qq && apt-get install -y -qq cmake >/dev/null; } ||
        die "cmake is missing and could not be installed"
    # shellcheck disable=SC2046
    cmake -S "$src" -B "$REF/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF $(isa_options) \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TESTS=OFF \
        >"$REF/cmake.log" 2>&1 || die "cmake configure failed: see $REF/cmake.log"
    echo "building llama.cpp in $REF/build (a few minutes; log $REF/build.log)" >&2
    cmake --build "$REF/build" -j"$(nproc)" --target "${TARGETS[@]}" >"$REF/build.log" 2>&1 ||
        die "llama.cpp build failed: see $REF/build.log"
}
# The shared script's download and build, with this CPU's ISA.
own_build() {
    local ver=$LLAMA_CPP_PYTHON
    mkdir -p "$REF"
    if [ ! -d "$REF/src/llama_cpp_python-$ver" ]; then
        echo "downloading llama-cpp-python==$ver (source) into $REF" >&2
        python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$ver" -d "$REF/dl" ||
            die "pip download llama-cpp-python==$ver failed"
        mkdir -p "$REF/src" && tar xzf "$REF/dl/llama_cpp_python-$ver.tar.gz" -C "$REF/src"
    fi
    configure_and_build "$REF/src/llama_cpp_python-$ver/vendor/llama.cpp"
}
# ISA options that the existing build enables but this CPU lacks.
isa_mismatch() {
    local cache=$REF/build/CMakeCache.txt opt want have
    [ -f "$cache" ] || return 0
    for opt in $(isa_options); do
        opt=${opt#-D}
        want=${opt#*=} opt=${opt%%=*}
        have=$(sed -n "s/^$opt:BOOL=//p" "$cache")
        [ "$have" = ON ] && [ "$want" = OFF ] && echo "$opt"
    done
    return 0
}
# A tiny llama-bench run on the first model; prints its JSON, returns its exit status.
smoke() {
    "$LLAMA_BIN/llama-bench" -m "${MODELS[0]}" -p 8 -n 1 -r 1 -t 1 -o json 2>"$WORK/smoke.log"
}

export LD_LIBRARY_PATH=$LLAMA_BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if [ -n "$OUTDIR" ]; then
    mkdir -p "$OUTDIR"
    WORK=$(cd "$OUTDIR" && pwd)
else
    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT
fi

if [ -f "$SHARED_BUILD" ]; then
    bash "$SHARED_BUILD" "$REF" >/dev/null || die "$SHARED_BUILD failed (logs in $REF)"
elif [ ! -x "$LLAMA_BIN/llama-bench" ]; then
    echo "no ../shared/scripts/build-llama-cpp.sh: building llama.cpp here" >&2
    own_build
fi
[ -x "$LLAMA_BIN/llama-bench" ] || die "no $LLAMA_BIN/llama-bench after the build"

rc=0
smoke >"$WORK/smoke.json" || rc=$?
bad=$(isa_mismatch | tr '\n' ' ')
if [ "$rc" = 132 ] || [ -n "$bad" ]; then
    if [ "$rc" = 132 ]; then
        echo "llama-bench died with SIGILL: it was built for ISA extensions this CPU lacks" >&2
    fi
    [ -n "$bad" ] && echo "the build enables ${bad}which this CPU lacks" >&2
    src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$REF/build/CMakeCache.txt" 2>/dev/null || true)
    [ -d "$src" ] || src=$REF/src/llama_cpp_python-$LLAMA_CPP_PYTHON/vendor/llama.cpp
    [ -d "$src" ] || die "llama.cpp source not found to rebuild (remove $REF/build and rerun)"
    echo "reconfiguring with $(isa_options | tr ' ' '\n' | grep '=ON' | sed 's/-DGGML_//; s/=ON//' | tr '\n' ' ')" >&2
    configure_and_build "$src"
    rc=0
    smoke >"$WORK/smoke.json" || rc=$?
fi
if [ "$rc" != 0 ]; then
    tail -n 20 "$WORK/smoke.log" >&2
    die "llama-bench does not run (exit $rc) on ${MODELS[0]}"
fi

# ---- the runs ----
cat >"$WORK/report.py" <<'PY'
import json, sys

def load(path):
    with open(path) as f:
        return json.load(f)

def llama(path):
    r = load(path)[0]
    return r["avg_ts"], r["stddev_ts"]

def nano(path):
    r = next(x for x in load(path) if "tok_per_s_mean" in x)
    return r["tok_per_s_mean"], r["tok_per_s_std"], r.get("weight_gb_per_s"), r.get("bandwidth_fraction")

def target(test):
    return 1.10 if test.startswith("tg") else 1.0

mode = sys.argv[1]
if mode == "row":  # one progress line: model test threads llama.json nanorun.json
    model, test, t, lj, nj = sys.argv[2:]
    l, n = llama(lj)[0], nano(nj)[0]
    print(f"  {model} {test} -t {t}: llama.cpp {l:.2f} tok/s, nanorun {n:.2f} tok/s, ratio {n / l:.3f}",
          file=sys.stderr)
elif mode == "version":
    r = load(sys.argv[2])[0]
    print(f"build {r['build_commit']} ({r['build_number']})")
else:  # table from the manifest
    rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[2])]
    print("| model | test | threads | llama.cpp tok/s | nanorun tok/s | nanorun / llama.cpp | target | nanorun GB/s | of read bandwidth |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    met = total = 0
    for model, test, t, lj, nj in rows:
        (l, ls), (n, ns, gbs, frac) = llama(lj), nano(nj)
        ratio, want = n / l, target(test)
        ok = ratio >= want
        met, total = met + ok, total + 1
        gb = f"{gbs:.2f}" if gbs is not None else "-"
        fr = f"{frac * 100:.0f} %" if frac is not None else "-"
        print(f"| {model} | {test} | {t} | {l:.2f} ± {ls:.2f} | {n:.2f} ± {ns:.2f} | "
              f"**{ratio:.3f}** | ≥ {want:.2f} {'yes' if ok else 'NO'} | {gb} | {fr} |")
    print()
    print(f"{met} of {total} rows meet their target (tg ≥ 1.10, pp ≥ 1.0 × llama.cpp).")
PY

cpu=$(grep -m 1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//' || true)
isa_on=$(sed -n 's/^GGML_\(AVX[A-Z0-9_]*\|FMA\|F16C\|BMI2\):BOOL=ON$/\1/p' "$REF/build/CMakeCache.txt" 2>/dev/null | tr '\n' ' ')
src_dir=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$REF/build/CMakeCache.txt" 2>/dev/null || true)
py_ver=$(echo "$src_dir" | sed -n 's/.*llama_cpp_python-\([0-9][0-9.]*\).*/\1/p')
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "?")
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then commit="$commit + uncommitted changes"; fi

echo "date:      $(date -u '+%Y-%m-%d %H:%M UTC')"
load=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
echo "machine:   ${cpu:-?}, $(nproc) cores, $(uname -m), load average $load at the start"
if awk -v l="${load%% *}" 'BEGIN { exit !(l + 0 > 0.5) }'; then
    echo "warning: the machine is busy (load average $load): expect noisy, lower numbers" >&2
fi
echo "llama.cpp: llama-cpp-python ${py_ver:-$LLAMA_CPP_PYTHON} (vendor/llama.cpp), $(python3 "$WORK/report.py" version "$WORK/smoke.json"), ISA ${isa_on:-?}— $LLAMA_BIN"
echo "nanorun:   $("$NANORUN" --version 2>/dev/null || echo nanorun), commit $commit — $NANORUN"
echo "runs:      -p $PROMPTS -n $GENS -d $DEPTH -t $THREADS -r $REPS; models: $(for m in "${MODELS[@]}"; do printf '%s ' "$(basename "$m")"; done)"
echo

: >"$WORK/manifest.tsv"
i=0
n_runs=$(( ${#MODELS[@]} * $(echo "$THREADS" | tr ',' '\n' | wc -l) * ${#TESTS[@]} ))
for model in "${MODELS[@]}"; do
    name=$(basename "$model" .gguf)
    for t in ${THREADS//,/ }; do
        for test in "${TESTS[@]}"; do
            i=$((i + 1))
            if [[ $test == pp* ]]; then p=${test#pp} n=0; else p=0 n=${test#tg}; fi
            label=$test
            [ "$DEPTH" = 0 ] || label="$test @ d$DEPTH"
            base=$WORK/$i-$name-$test-t$t
            run_llama() {
                "$LLAMA_BIN/llama-bench" -m "$model" -p "$p" -n "$n" -d "$DEPTH" -t "$t" -r "$REPS" -o json \
                    >"$base.llama.json" 2>"$base.llama.log" ||
                    { tail -n 20 "$base.llama.log" >&2; die "llama-bench failed on $model ($test, -t $t)"; }
            }
            # Decode tests also measure the read bandwidth on as many threads, just before.
            bw=()
            [ "$n" != 0 ] && bw=(--bandwidth)
            run_nanorun() {
                "$NANORUN" bench -m "$model" -p "$p" -n "$n" -d "$DEPTH" -t "$t" -r "$REPS" --json "${bw[@]}" \
                    >"$base.nanorun.json" 2>"$base.nanorun.log" ||
                    { tail -n 20 "$base.nanorun.log" >&2; die "nanorun bench failed on $model ($test, -t $t)"; }
            }
            echo "[$i/$n_runs] $name $test -t $t" >&2
            if [ $((i % 2)) = 1 ]; then run_llama; run_nanorun; else run_nanorun; run_llama; fi
            python3 "$WORK/report.py" row "$name" "$label" "$t" "$base.llama.json" "$base.nanorun.json" ||
                die "could not read the results of $name $test -t $t (see $base.*)"
            printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$label" "$t" "$base.llama.json" "$base.nanorun.json" \
                >>"$WORK/manifest.tsv"
        done
    done
done
echo
python3 "$WORK/report.py" table "$WORK/manifest.tsv" | tee "$WORK/table.md"
[ -z "$OUTDIR" ] || echo "raw results in $WORK" >&2

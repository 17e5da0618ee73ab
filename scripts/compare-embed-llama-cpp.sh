#!/usr/bin/env bash
# Sentence-embedding throughput of nanorun beside llama.cpp's llama-embedding, same GGUF, same
# sentences, same threads.
#
#   scripts/compare-embed-llama-cpp.sh MODEL.gguf [-t THREADS] [-B 1,8,32] [-r RUNS] [-n REPEAT]
#                                      [-f SENTENCES.txt]
#
# The sentences (default cli/data/embed-sentences.txt, the 32 that `nanorun bench --embed`
# uses) are repeated REPEAT times (default 8) into one file of N lines. For each batch size B,
# both command-line tools embed that file with a budget of B × (mean sentence length) tokens
# per forward pass, rounded up to a multiple of 256 (`nanorun embed -b`, `llama-embedding
# -c = -b = -ub`; llama-embedding forces -b ≥ -c and pads the context to a multiple of 256,
# aborting on an assertion when -b is smaller): both pack whole sentences greedily up to that
# many tokens, so they run the same batches — seq/pass is the mean number of sentences per
# pass in llama.cpp's log (llama-embedding cannot cap a batch by sentences, so at B = 1 a pass
# holds several short sentences; the bench below runs exactly B). Timing is the wall clock of the
# whole process, median of RUNS (default 3) runs: "wall" is N / time; "net" subtracts the median
# time of the same command on a one-sentence file (start-up, model load), (N - 1) / (t_N - t_1).
# Last, `nanorun bench --embed` (in process, exactly B sentences per pass, median of RUNS).
#
# LLAMA_BIN (default ~/.cache/nanorun-ref/build/bin) holds llama-embedding and its libraries;
# NANORUN (default target/release/nanorun) is the binary to measure.
set -euo pipefail

MODEL=${1:?usage: $0 MODEL.gguf [-t THREADS] [-B 1,8,32] [-r RUNS] [-n REPEAT] [-f FILE]}
shift
THREADS=1 BATCHES=1,8,32 RUNS=3 REPEAT=8
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SENTENCES=$ROOT/cli/data/embed-sentences.txt
while getopts "t:B:r:n:f:" o; do
    case $o in
        t) THREADS=$OPTARG ;;
        B) BATCHES=$OPTARG ;;
        r) RUNS=$OPTARG ;;
        n) REPEAT=$OPTARG ;;
        f) SENTENCES=$OPTARG ;;
        *) exit 2 ;;
    esac
done
LLAMA_BIN=${LLAMA_BIN:-$HOME/.cache/nanorun-ref/build/bin}
NANORUN=${NANORUN:-$ROOT/target/release/nanorun}
export LD_LIBRARY_PATH=$LLAMA_BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
[ -x "$NANORUN" ] || { echo "no $NANORUN: cargo build --release -p nanorun-cli" >&2; exit 1; }
[ -x "$LLAMA_BIN/llama-embedding" ] || { echo "no $LLAMA_BIN/llama-embedding" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
grep -v '^[[:space:]]*$' "$SENTENCES" > "$TMP/one-copy.txt"
for _ in $(seq "$REPEAT"); do cat "$TMP/one-copy.txt"; done > "$TMP/all.txt"
head -n 1 "$TMP/one-copy.txt" > "$TMP/first.txt"
N=$(wc -l < "$TMP/all.txt")
read -r MAXLEN MEAN < <("$NANORUN" embed -m "$MODEL" -f "$TMP/one-copy.txt" --json -t "$THREADS" |
    python3 -c 'import json,sys; n=[d["n_tokens"] for d in json.load(sys.stdin)["data"]]
print(max(n), -(-sum(n) // len(n)))')

# Median wall-clock seconds of RUNS runs of the command.
median_time() {
    local times=()
    for _ in $(seq "$RUNS"); do
        local t0 t1
        t0=$(date +%s.%N)
        "$@" > /dev/null 2> "$TMP/stderr" || { cat "$TMP/stderr" >&2; exit 1; }
        t1=$(date +%s.%N)
        times+=("$(echo "$t1 - $t0" | bc -l)")
    done
    printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
}

nanorun_cmd() { "$NANORUN" embed -m "$MODEL" -t "$THREADS" -b "$2" --normalize -f "$1"; }
llama_cmd() {
    "$LLAMA_BIN/llama-embedding" -m "$MODEL" -t "$THREADS" -c "$2" -b "$2" -ub "$2" \
        --embd-normalize 2 -f "$1"
}

echo "model $(basename "$MODEL"), $THREADS thread(s), $N sentences (mean $MEAN tokens, longest $MAXLEN), median of $RUNS runs"
echo
echo "| batch | tokens/pass | tool | seq/pass | wall s | sentences/s (wall) | sentences/s (net of load) |"
echo "| ---: | ---: | --- | ---: | ---: | ---: | ---: |"
for B in ${BATCHES//,/ }; do
    BUDGET=$(( (B * MEAN > MAXLEN ? B * MEAN : MAXLEN) + 255 ))
    BUDGET=$((BUDGET - BUDGET % 256))
    per=-
    for tool in llama nanorun; do  # nanorun packs by the same rule: the same seq/pass
        tn=$(median_time "${tool}_cmd" "$TMP/all.txt" "$BUDGET")
        t1=$(median_time "${tool}_cmd" "$TMP/first.txt" "$BUDGET")
        if [ "$tool" = llama ]; then
            llama_cmd "$TMP/all.txt" "$BUDGET" 2>&1 > /dev/null | grep -o 'n_seq = [0-9]*' > "$TMP/seqs" || true
            per=$(awk '{s+=$3} END {if (NR) printf "%.1f", s/NR}' "$TMP/seqs")
        fi
        name=$([ "$tool" = llama ] && echo llama-embedding || echo "nanorun embed")
        awk -v b="$B" -v bud="$BUDGET" -v name="$name" -v per="$per" -v n="$N" -v tn="$tn" -v t1="$t1" \
            'BEGIN {net = (tn > t1) ? sprintf("%.1f", (n - 1) / (tn - t1)) : "-";
                    printf "| %d | %d | %s | %s | %.3f | %.1f | %s |\n", b, bud, name, per, tn, n / tn, net}'
    done
done
echo
echo "nanorun bench --embed (in process, exactly B sentences per pass):"
echo
"$NANORUN" bench --embed -m "$MODEL" -t "$THREADS" -r "$RUNS" --batch-sizes "$BATCHES" -f "$TMP/one-copy.txt"

#!/usr/bin/env bash
# Make the Llama-3.2-1B-shaped random-weight model for speed comparisons:
# scripts/gen-llama-1b.py writes it as F16 (~2.5 GB, next to the output), `nanorun quantize`
# turns it into OUT (Q4_K_M by default, ~0.8 GB), and the F16 file is deleted.
#
#   scripts/make-llama-1b.sh [-o OUT.gguf] [-q TYPE] [-s SEED] [-t THREADS] [-f]
#
# OUT defaults to models/llama-1b-shaped-q4_k_m.gguf (models/ is git-ignored: the file never goes
# into git). An existing OUT is kept unless -f. NANORUN (default target/release/nanorun, built
# with cargo when missing) is the binary that quantizes. Needs python3 (standard library only).
set -euo pipefail

usage() { echo "usage: $0 [-o OUT.gguf] [-q TYPE] [-s SEED] [-t THREADS] [-f]" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/models/llama-1b-shaped-q4_k_m.gguf
TYPE=Q4_K_M SEED=1234 THREADS='' FORCE=0
while getopts "o:q:s:t:fh" o; do
    case $o in
        o) OUT=$OPTARG ;;
        q) TYPE=$OPTARG ;;
        s) SEED=$OPTARG ;;
        t) THREADS=$OPTARG ;;
        f) FORCE=1 ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || usage

if [ -e "$OUT" ] && [ "$FORCE" = 0 ]; then
    echo "$OUT exists (-f to remake it)"
    exit 0
fi
command -v python3 >/dev/null || { echo "error: python3 not found" >&2; exit 1; }
NANORUN=${NANORUN:-$ROOT/target/release/nanorun}
if [ ! -x "$NANORUN" ]; then
    echo "building $NANORUN (cargo build --release -p nanorun-cli)" >&2
    (cd "$ROOT" && cargo build --release -p nanorun-cli)
fi
[ -x "$NANORUN" ] || { echo "error: no nanorun binary at $NANORUN" >&2; exit 1; }

mkdir -p "$(dirname "$OUT")"
F16=$OUT.f16.tmp
trap 'rm -f "$F16" "$F16.partial"' EXIT
echo "generating the F16 model (seed $SEED)" >&2
python3 "$ROOT/scripts/gen-llama-1b.py" "$F16" --seed "$SEED"
echo "quantizing to $TYPE" >&2
"$NANORUN" quantize "$F16" "$OUT" "$TYPE" ${THREADS:+-t "$THREADS"}
rm -f "$F16"
echo "wrote $OUT ($(du -h "$OUT" | cut -f1))"

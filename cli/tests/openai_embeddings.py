"""The official `openai` Python client calling `/v1/embeddings` of `nanorun serve`.

Usage: python3 openai_embeddings.py BASE_URL MODEL REF.emb.f32
REF is llama.cpp's raw pooled vector of the first fixture sequence (bert fixtures).
Prints "openai embeddings: all checks passed" and exits 0 when every check holds.
"""

import math
import struct
import sys

import openai

base_url, model, ref_path = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=60)

# Default request: the client asks for base64 and decodes it.
r = client.embeddings.create(model=model, input=["hello world", "the lazy dog", "graphrag"])
assert len(r.data) == 3 and [d.index for d in r.data] == [0, 1, 2], r
assert all(len(d.embedding) == 256 for d in r.data)
assert all(abs(sum(x * x for x in d.embedding) - 1) < 1e-4 for d in r.data)
assert r.usage.prompt_tokens == r.usage.total_tokens > 6, r.usage

# Floats: the same vectors.
f = client.embeddings.create(model=model, input=["hello world"], encoding_format="float")
assert max(abs(a - b) for a, b in zip(f.data[0].embedding, r.data[0].embedding)) < 1e-6

# Token ids: llama.cpp's vector, normalised.
ids = [2, 16, 113, 210, 307, 89, 3]
t = client.embeddings.create(model=model, input=[ids], encoding_format="float")
ref = struct.unpack("<256f", open(ref_path, "rb").read()[:1024])
n = math.sqrt(sum(x * x for x in ref))
assert max(abs(a - b / n) for a, b in zip(t.data[0].embedding, ref)) < 1e-3

try:
    client.embeddings.create(model="no-such-model", input="x")
    raise AssertionError("wrong model accepted")
except openai.NotFoundError:
    pass
try:
    client.embeddings.create(model=model, input=[])
    raise AssertionError("empty input accepted")
except openai.BadRequestError:
    pass

print("openai embeddings: all checks passed")

#!/usr/bin/env python3
"""Write a Llama-3.2-1B-shaped GGUF with random F16 weights, for speed work only.

usage: scripts/gen-llama-1b.py OUT.gguf [--seed N] [--ctx N]

Shape and metadata of Llama 3.2 1B: arch `llama`, n_embd 2048, 16 layers, n_ff 8192, 32 query
heads and 8 KV heads of 64, RMS eps 1e-5, RoPE base 500000 with the llama3 frequency factors
(`rope_freqs.weight`, factor 32, original context 8192), context length 131072, tied embeddings
(no `output.weight`, like the real model), vocabulary of 128256 tokens.

Tokenizer: `gpt2` byte-level BPE with the `llama-bpe` pre-tokenizer, as Llama 3's: the 256 byte
tokens, merges that build a few hundred common English words, `<filler_N>` pieces up to id 128000,
then Llama 3's 256 special tokens (`<|begin_of_text|>` = 128000 = BOS, `<|end_of_text|>` = 128001
= EOS, `<|eot_id|>` = 128009, ...). Text tokenizes and decodes; the token statistics are not a
real model's, which does not matter for speed.

Weights: projections ~ N(0, 1/sqrt(fan_in)), token embedding ~ N(0, 0.02) (F16); norms 1 ± 0.1
(F32). Values are drawn from a seeded generator (default seed 1234) with the standard library
only: random bytes, whose high byte of each F16 goes through a table of half-normal quantiles
(sign, exponent and top two mantissa bits) while the low byte stays uniform; the values are
bounded (|x| < 3 std), so nothing overflows. About 2.5 GB are written; then quantize it, e.g.
`nanorun quantize OUT.gguf OUT-q4_k_m.gguf Q4_K_M` (scripts/make-llama-1b.sh does both).
"""
import argparse
import math
import os
import random
import statistics
import struct
import sys

N_EMBD, N_LAYER, N_FF, N_HEAD, N_HEAD_KV, HEAD_DIM, N_VOCAB = 2048, 16, 8192, 32, 8, 64, 128256
N_SPECIAL = 256
ALIGN = 32

# GGUF metadata value types and ggml tensor types.
T_U32, T_I32, T_F32, T_BOOL, T_STR, T_ARR = 4, 5, 6, 7, 8, 9
GGML_F32, GGML_F16 = 0, 1

WORDS = """the of and to in is was for on that with as by at from his it an were are which be this
had not or have their but one has they been its who also new after first two more other all when
time would there her into only used can during over most some year years many city between made
about state may world under then she out while such both up through could world war while part
known however these later where three well before being high since called because people school
system each so used until region number name even any than them same another area day university
national american world music film game team house life work power play water very good great
little just what like make know take come think look want give find tell ask seem feel try leave
call hello language model token speed engine bench memory fast small""".split()


def bytes_to_unicode():
    """GPT-2's byte-to-character map of byte-level BPE (printable bytes map to themselves)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs], bs


def llama3_specials():
    names = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
             "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>",
             "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
             "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
    k = 3
    while len(names) < N_SPECIAL:
        names.append(f"<|reserved_special_token_{k}|>")
        k += 1
    return names


def tokenizer():
    """(tokens, token types, merges) of the vocabulary described in the module docstring."""
    chars, _ = bytes_to_unicode()
    tokens = list(chars)
    seen = set(tokens)
    merges = []
    for w in dict.fromkeys(WORDS):  # unique, in order
        for word in ("Ġ" + w, w):  # with and without the leading space
            cur = word[0]
            for ch in word[1:]:
                nxt = cur + ch
                if nxt not in seen:
                    merges.append(f"{cur} {ch}")
                    tokens.append(nxt)
                    seen.add(nxt)
                cur = nxt
    n_normal = N_VOCAB - N_SPECIAL
    tokens += [f"<filler_{i}>" for i in range(n_normal - len(tokens))]
    tokens += llama3_specials()
    types = [1] * n_normal + [3] * N_SPECIAL  # NORMAL, CONTROL
    assert len(tokens) == N_VOCAB and len(set(tokens)) == N_VOCAB
    return tokens, types, merges


def llama3_rope_freqs(dim=HEAD_DIM, base=500000.0, factor=32.0, low=1.0, high=4.0, orig=8192):
    out = []
    for i in range(0, dim, 2):
        f = 1.0 / (base ** (i / dim))
        wl = 2 * math.pi / f
        if wl < orig / high:
            out.append(1.0)
        elif wl > orig / low:
            out.append(factor)
        else:
            smooth = (orig / wl - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return out


class Writer:
    """GGUF v3: header, metadata, tensor infos, then the data, each part 32-byte aligned."""

    def __init__(self):
        self.kv = []
        self.tensors = []  # (name, ne, ggml type, nbytes, fill(file))

    @staticmethod
    def _str(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def add(self, key, vtype, value, atype=None):
        out = self._str(key) + struct.pack("<I", vtype)
        out += self._value(vtype, value, atype)
        self.kv.append(out)

    def _value(self, vtype, value, atype=None):
        if vtype == T_U32:
            return struct.pack("<I", value)
        if vtype == T_I32:
            return struct.pack("<i", value)
        if vtype == T_F32:
            return struct.pack("<f", value)
        if vtype == T_BOOL:
            return struct.pack("<?", value)
        if vtype == T_STR:
            return self._str(value)
        if vtype == T_ARR:
            head = struct.pack("<IQ", atype, len(value))
            if atype == T_STR:
                return head + b"".join(self._str(v) for v in value)
            if atype == T_I32:
                return head + struct.pack(f"<{len(value)}i", *value)
            if atype == T_F32:
                return head + struct.pack(f"<{len(value)}f", *value)
        raise ValueError(f"unsupported type {vtype}/{atype}")

    def tensor(self, name, ne, gtype, fill):
        n = 1
        for d in ne:
            n *= d
        nbytes = n * (4 if gtype == GGML_F32 else 2)
        self.tensors.append((name, ne, gtype, nbytes, fill))

    def write(self, path):
        with open(path, "wb") as f:
            f.write(b"GGUF" + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv)))
            for kv in self.kv:
                f.write(kv)
            off = 0
            for name, ne, gtype, nbytes, _ in self.tensors:
                f.write(self._str(name) + struct.pack("<I", len(ne)))
                f.write(struct.pack(f"<{len(ne)}Q", *ne) + struct.pack("<IQ", gtype, off))
                off += -(-nbytes // ALIGN) * ALIGN
            f.write(b"\0" * (-f.tell() % ALIGN))
            for i, (name, _, _, nbytes, fill) in enumerate(self.tensors):
                start = f.tell()
                fill(f)
                assert f.tell() - start == nbytes, name
                f.write(b"\0" * (-f.tell() % ALIGN))
                print(f"\r  {i + 1}/{len(self.tensors)} tensors, {f.tell() / 1e9:.2f} GB", end="",
                      file=sys.stderr, flush=True)
            print(file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="the F16 GGUF to write")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--ctx", type=int, default=131072, help="llama.context_length (default 131072)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    half_normal = statistics.NormalDist()
    tables = {}

    def table(std):
        # High byte of an F16 (sign, 5 exponent bits, 2 mantissa bits) for each random byte:
        # bit 7 is the sign, the other 7 pick one of 128 half-normal quantiles.
        if std not in tables:
            t = bytearray(256)
            for k in range(128):
                mag = std * half_normal.inv_cdf(0.5 + 0.5 * (k + 0.5) / 128)
                hb = struct.pack("<e", mag)[1] & 0x7F
                t[k], t[128 + k] = hb, hb | 0x80
            tables[std] = bytes(t)
        return tables[std]

    def f16(n, std):
        def fill(f):
            t = table(std)
            left = 2 * n
            while left:
                k = min(left, 1 << 23)
                buf = bytearray(rng.randbytes(k))
                buf[1::2] = buf[1::2].translate(t)
                f.write(buf)
                left -= k
        return fill

    def f32(values):
        return lambda f: f.write(struct.pack(f"<{len(values)}f", *values))

    def norm(n):
        return f32([1.0 + 0.1 * rng.gauss(0.0, 1.0) for _ in range(n)])

    tokens, types, merges = tokenizer()
    w = Writer()
    w.add("general.architecture", T_STR, "llama")
    w.add("general.type", T_STR, "model")
    w.add("general.name", T_STR, "random-llama-3.2-1b-shape")
    w.add("general.file_type", T_U32, 1)  # MOSTLY_F16
    w.add("llama.vocab_size", T_U32, N_VOCAB)
    w.add("llama.context_length", T_U32, args.ctx)
    w.add("llama.embedding_length", T_U32, N_EMBD)
    w.add("llama.block_count", T_U32, N_LAYER)
    w.add("llama.feed_forward_length", T_U32, N_FF)
    w.add("llama.attention.head_count", T_U32, N_HEAD)
    w.add("llama.attention.head_count_kv", T_U32, N_HEAD_KV)
    w.add("llama.attention.key_length", T_U32, HEAD_DIM)
    w.add("llama.attention.value_length", T_U32, HEAD_DIM)
    w.add("llama.rope.dimension_count", T_U32, HEAD_DIM)
    w.add("llama.rope.freq_base", T_F32, 500000.0)
    w.add("llama.attention.layer_norm_rms_epsilon", T_F32, 1e-5)
    w.add("tokenizer.ggml.model", T_STR, "gpt2")
    w.add("tokenizer.ggml.pre", T_STR, "llama-bpe")
    w.add("tokenizer.ggml.tokens", T_ARR, tokens, T_STR)
    w.add("tokenizer.ggml.token_type", T_ARR, types, T_I32)
    w.add("tokenizer.ggml.merges", T_ARR, merges, T_STR)
    w.add("tokenizer.ggml.bos_token_id", T_U32, 128000)
    w.add("tokenizer.ggml.eos_token_id", T_U32, 128001)
    w.add("tokenizer.ggml.add_bos_token", T_BOOL, True)

    q_dim, kv_dim = N_HEAD * HEAD_DIM, N_HEAD_KV * HEAD_DIM
    # ne = (row length, rows), as ggml orders dimensions.
    w.tensor("token_embd.weight", (N_EMBD, N_VOCAB), GGML_F16, f16(N_EMBD * N_VOCAB, 0.02))
    w.tensor("rope_freqs.weight", (HEAD_DIM // 2,), GGML_F32, f32(llama3_rope_freqs()))
    for il in range(N_LAYER):
        p = f"blk.{il}."

        def proj(name, n_in, n_out):
            w.tensor(p + name, (n_in, n_out), GGML_F16, f16(n_in * n_out, 1 / math.sqrt(n_in)))

        w.tensor(p + "attn_norm.weight", (N_EMBD,), GGML_F32, norm(N_EMBD))
        proj("attn_q.weight", N_EMBD, q_dim)
        proj("attn_k.weight", N_EMBD, kv_dim)
        proj("attn_v.weight", N_EMBD, kv_dim)
        proj("attn_output.weight", q_dim, N_EMBD)
        w.tensor(p + "ffn_norm.weight", (N_EMBD,), GGML_F32, norm(N_EMBD))
        proj("ffn_gate.weight", N_EMBD, N_FF)
        proj("ffn_up.weight", N_EMBD, N_FF)
        proj("ffn_down.weight", N_FF, N_EMBD)
    w.tensor("output_norm.weight", (N_EMBD,), GGML_F32, norm(N_EMBD))

    tmp = args.out + ".partial"
    try:
        w.write(tmp)
        os.replace(tmp, args.out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e9:.2f} GB)", file=sys.stderr)


if __name__ == "__main__":
    main()

// Weight block types, byte-for-byte ggml's layouts (see REFERENCE.md and
// kernels/src/quant/*.rs). Each type gives:
//   QK, BYTES         values and bytes per block;
//   elem(b, i)        value i of block b, dequantized (the scalar oracle's order);
//   dot32(b, j, a)    sum over the j-th run of 32 values of block b times Q8_1 block a.
// cuda/src/layout.rs mirrors `elem`'s index math in Rust and tests it against the CPU
// dequantizers.

// (scale, min) of sub-block j of Q4_K / Q5_K's 12 packed bytes (ggml's get_scale_min_k4).
__device__ __forceinline__ void scale_min_k4(int j, const u8* q, int* sc, int* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

struct TF32 {
    static constexpr int QK = 1, BYTES = 4;
    __device__ static float elem(const u8* b, int) { return __int_as_float((int)ld_u32(b)); }
};

struct TF16 {
    static constexpr int QK = 1, BYTES = 2;
    __device__ static float elem(const u8* b, int) { return ld_f16(b); }
};

// Q4_0: d (f16), 16 bytes of nibbles; value j is the low nibble of qs[j], value j+16 the high
// one; w = d * (n - 8).
struct TQ4_0 {
    static constexpr int QK = 32, BYTES = 18;
    __device__ static float elem(const u8* b, int i) {
        const u8 q = b[2 + (i & 15)];
        const int n = i < 16 ? (q & 0xF) : (q >> 4);
        return ld_f16(b) * (float)(n - 8);
    }
    __device__ static float dot32(const u8* b, int, const BlockQ8_1* a) {
        int sumi = 0;
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            const u8 q = b[2 + j];
            sumi += (q & 0xF) * a->qs[j] + (q >> 4) * a->qs[j + 16];
        }
        return ld_f16(b) * (h2f(a->d) * (float)sumi - 8.0f * h2f(a->s));
    }
};

// Q5_0: d (f16), qh (32 high bits, little-endian), 16 bytes of nibbles; w = d * (n - 16).
struct TQ5_0 {
    static constexpr int QK = 32, BYTES = 22;
    __device__ static float elem(const u8* b, int i) {
        const u32 qh = ld_u32(b + 2);
        const u8 q = b[6 + (i & 15)];
        const int lo = i < 16 ? (q & 0xF) : (q >> 4);
        const int n = lo | (int)(((qh >> i) & 1u) << 4);
        return ld_f16(b) * (float)(n - 16);
    }
    __device__ static float dot32(const u8* b, int, const BlockQ8_1* a) {
        const u32 qh = ld_u32(b + 2);
        int sumi = 0;
#pragma unroll
        for (int j = 0; j < 16; ++j) {
            const u8 q = b[6 + j];
            const int n0 = (q & 0xF) | (int)(((qh >> j) & 1u) << 4);
            const int n1 = (q >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
            sumi += n0 * a->qs[j] + n1 * a->qs[j + 16];
        }
        return ld_f16(b) * (h2f(a->d) * (float)sumi - 16.0f * h2f(a->s));
    }
};

// Q8_0: d (f16), 32 signed quants; w = d * q.
struct TQ8_0 {
    static constexpr int QK = 32, BYTES = 34;
    __device__ static float elem(const u8* b, int i) { return ld_f16(b) * (float)(i8)b[2 + i]; }
    __device__ static float dot32(const u8* b, int, const BlockQ8_1* a) {
        int sumi = 0;
#pragma unroll
        for (int j = 0; j < 32; ++j) sumi += (int)(i8)b[2 + j] * a->qs[j];
        return ld_f16(b) * h2f(a->d) * (float)sumi;
    }
};

// Q4_K: d, dmin (f16), 12 bytes of packed 6-bit scales and mins, 128 bytes of nibbles.
// Values 64g..64g+31 are the low nibbles of qs[32g..32g+32] (sub-block 2g), values
// 64g+32..64g+63 the high ones (sub-block 2g+1); w = d * sc * n - dmin * m.
struct TQ4_K {
    static constexpr int QK = 256, BYTES = 144;
    __device__ static float elem(const u8* b, int i) {
        const int g = i / 64, sub = i / 32, l = i % 32;
        const u8 q = b[16 + 32 * g + l];
        const int n = (sub & 1) ? (q >> 4) : (q & 0xF);
        int sc, m;
        scale_min_k4(sub, b + 4, &sc, &m);
        return ld_f16(b) * (float)sc * (float)n - ld_f16(b + 2) * (float)m;
    }
    __device__ static float dot32(const u8* b, int sub, const BlockQ8_1* a) {
        const u8* qs = b + 16 + 32 * (sub / 2);
        const int shift = (sub & 1) * 4;
        int sumi = 0;
#pragma unroll
        for (int l = 0; l < 32; ++l) sumi += ((qs[l] >> shift) & 0xF) * a->qs[l];
        int sc, m;
        scale_min_k4(sub, b + 4, &sc, &m);
        return ld_f16(b) * (float)sc * h2f(a->d) * (float)sumi -
               ld_f16(b + 2) * (float)m * h2f(a->s);
    }
};

// Q5_K: d, dmin, 12 scale bytes, qh[32] (bit `sub` of qh[l] is the fifth bit of value
// 32*sub + l), qs[128] as Q4_K; w = d * sc * n - dmin * m.
struct TQ5_K {
    static constexpr int QK = 256, BYTES = 176;
    __device__ static float elem(const u8* b, int i) {
        const int g = i / 64, sub = i / 32, l = i % 32;
        const u8 q = b[48 + 32 * g + l];
        const int lo = (sub & 1) ? (q >> 4) : (q & 0xF);
        const int n = lo | (((b[16 + l] >> sub) & 1) << 4);
        int sc, m;
        scale_min_k4(sub, b + 4, &sc, &m);
        return ld_f16(b) * (float)sc * (float)n - ld_f16(b + 2) * (float)m;
    }
    __device__ static float dot32(const u8* b, int sub, const BlockQ8_1* a) {
        const u8* qs = b + 48 + 32 * (sub / 2);
        const u8* qh = b + 16;
        const int shift = (sub & 1) * 4;
        int sumi = 0;
#pragma unroll
        for (int l = 0; l < 32; ++l) {
            const int n = ((qs[l] >> shift) & 0xF) | (((qh[l] >> sub) & 1) << 4);
            sumi += n * a->qs[l];
        }
        int sc, m;
        scale_min_k4(sub, b + 4, &sc, &m);
        return ld_f16(b) * (float)sc * h2f(a->d) * (float)sumi -
               ld_f16(b + 2) * (float)m * h2f(a->s);
    }
};

// Q6_K: ql[128] (low nibbles), qh[64] (high bit pairs), 16 signed scales, d (f16) at 208.
// Value i: half h = i/128, r = i%128, quarter c = r/32, l = r%32; low nibble of
// ql[64h + l + 32(c&1)] (high nibble when c >= 2), bits 2c..2c+1 of qh[32h + l];
// scale scales[8h + 2c + l/16]; w = d * sc * (q - 32).
struct TQ6_K {
    static constexpr int QK = 256, BYTES = 210;
    __device__ static int q6(const u8* b, int h, int c, int l) {
        const u8 ql = b[64 * h + l + 32 * (c & 1)];
        const int lo = c >= 2 ? (ql >> 4) : (ql & 0xF);
        const int hi = (b[128 + 32 * h + l] >> (2 * c)) & 3;
        return (lo | (hi << 4)) - 32;
    }
    __device__ static float elem(const u8* b, int i) {
        const int h = i / 128, c = (i % 128) / 32, l = i % 32;
        const int sc = (i8)b[192 + 8 * h + 2 * c + l / 16];
        return ld_f16(b + 208) * (float)sc * (float)q6(b, h, c, l);
    }
    __device__ static float dot32(const u8* b, int j, const BlockQ8_1* a) {
        const int h = j / 4, c = j % 4;
        int s0 = 0, s1 = 0;
#pragma unroll
        for (int l = 0; l < 16; ++l) s0 += q6(b, h, c, l) * a->qs[l];
#pragma unroll
        for (int l = 16; l < 32; ++l) s1 += q6(b, h, c, l) * a->qs[l];
        const int sc0 = (i8)b[192 + 8 * h + 2 * c], sc1 = (i8)b[192 + 8 * h + 2 * c + 1];
        return ld_f16(b + 208) * h2f(a->d) * (float)(sc0 * s0 + sc1 * s1);
    }
};

// Value `col` of a row of type T.
template <typename T>
__device__ __forceinline__ float dq_elem(const u8* row, int col) {
    return T::elem(row + (size_t)(col / T::QK) * T::BYTES, col % T::QK);
}

// Dot of the ib-th run of 32 values of a row of type T with one Q8_1 block.
template <typename T>
__device__ __forceinline__ float dot_run32(const u8* row, int ib, const BlockQ8_1* a) {
    const int per = T::QK / 32;
    return T::dot32(row + (size_t)(ib / per) * T::BYTES, ib % per, a);
}

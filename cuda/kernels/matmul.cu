// Prefill: out[t][r] = W[r,:] . x[t,:] for many tokens, in f32. The simple, correct choice:
// each 32x32 tile of W is dequantized into shared memory (dq_elem) together with a 32x32 tile
// of x, and each thread accumulates 4 outputs in f32. No tensor cores (not measured; see
// docs/cuda.md). Activations stay f32, so results differ from the Q8-activation CPU path by
// activation rounding only.
// Launch (geometry.rs, `matmul`): block (32, 8), grid (ceil(rows / 32), ceil(n_tokens / 32)).

#define MM_TILE 32
#define MM_ROWS_PER_THREAD 4

template <typename T>
__device__ __forceinline__ void mm(const u8* __restrict__ w, u64 row_bytes, int rows, int cols,
                                   const float* __restrict__ x, int n_tokens,
                                   float* __restrict__ out) {
    __shared__ float ws[MM_TILE][MM_TILE + 1];
    __shared__ float xs[MM_TILE][MM_TILE + 1];
    const int r0 = blockIdx.x * MM_TILE, t0 = blockIdx.y * MM_TILE;
    const int tx = threadIdx.x, ty = threadIdx.y;
    float acc[MM_ROWS_PER_THREAD] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int k0 = 0; k0 < cols; k0 += MM_TILE) {
        const int k = k0 + tx;
        for (int i = ty; i < MM_TILE; i += blockDim.y) {
            const int r = r0 + i, t = t0 + i;
            ws[i][tx] = (r < rows && k < cols) ? dq_elem<T>(w + (size_t)r * row_bytes, k) : 0.0f;
            xs[i][tx] = (t < n_tokens && k < cols) ? x[(size_t)t * cols + k] : 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (int kk = 0; kk < MM_TILE; ++kk) {
            const float wv = ws[tx][kk];
#pragma unroll
            for (int j = 0; j < MM_ROWS_PER_THREAD; ++j) acc[j] += wv * xs[ty + j * 8][kk];
        }
        __syncthreads();
    }
    const int r = r0 + tx;
    if (r >= rows) return;
#pragma unroll
    for (int j = 0; j < MM_ROWS_PER_THREAD; ++j) {
        const int t = t0 + ty + j * 8;
        if (t < n_tokens) out[(size_t)t * rows + r] = acc[j];
    }
}

// Rows `ids[i]` of W, dequantized and multiplied by `scale` (token embeddings).
// Launch: block (256), grid (n_ids).
template <typename T>
__device__ __forceinline__ void get_rows(const u8* __restrict__ w, u64 row_bytes, int cols,
                                         const u32* __restrict__ ids, float scale,
                                         float* __restrict__ out) {
    const u8* wr = w + (size_t)ids[blockIdx.x] * row_bytes;
    float* o = out + (size_t)blockIdx.x * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) o[c] = dq_elem<T>(wr, c) * scale;
}

#define MM(suffix, T)                                                                       \
    extern "C" __global__ void mm_##suffix(const u8* __restrict__ w, u64 row_bytes,        \
                                           int rows, int cols, const float* __restrict__ x, \
                                           int n_tokens, float* __restrict__ out) {         \
        mm<T>(w, row_bytes, rows, cols, x, n_tokens, out);                                  \
    }                                                                                       \
    extern "C" __global__ void get_rows_##suffix(const u8* __restrict__ w, u64 row_bytes,  \
                                                 int cols, const u32* __restrict__ ids,     \
                                                 float scale, float* __restrict__ out) {    \
        get_rows<T>(w, row_bytes, cols, ids, scale, out);                                   \
    }

MM(f32, TF32)
MM(f16, TF16)
MM(q4_0, TQ4_0)
MM(q5_0, TQ5_0)
MM(q8_0, TQ8_0)
MM(q4_k, TQ4_K)
MM(q5_k, TQ5_K)
MM(q6_k, TQ6_K)

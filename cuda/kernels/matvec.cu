// Quantized matrix times a few activation vectors (decode): out[t][r] = W[r,:] . x[t,:].
// One warp per output row, reading the weight blocks in place; lane i takes the runs of 32
// values i, i+32, ...; activations are Q8_1 (see quantize.cu). Sums are reduced over the warp.
// Launch (cuda/src/geometry.rs, `matvec`): block (32, MMV_ROWS), grid (ceil(rows / MMV_ROWS),
// n_tokens). n_cols % 32 == 0 for every supported type.

template <typename T>
__device__ __forceinline__ void mmv(const u8* __restrict__ w, u64 row_bytes, int rows, int cols,
                                    const BlockQ8_1* __restrict__ a, float* __restrict__ out) {
    const int row = blockIdx.x * blockDim.y + threadIdx.y;
    const int t = blockIdx.y;
    if (row >= rows) return;
    const int n_runs = cols / 32;
    const u8* wr = w + (size_t)row * row_bytes;
    const BlockQ8_1* at = a + (size_t)t * n_runs;
    float acc = 0.0f;
    for (int ib = threadIdx.x; ib < n_runs; ib += WARP_SIZE) acc += dot_run32<T>(wr, ib, at + ib);
    acc = warp_sum(acc);
    if (threadIdx.x == 0) out[(size_t)t * rows + row] = acc;
}

#define MMV(name, T)                                                                        \
    extern "C" __global__ void name(const u8* __restrict__ w, u64 row_bytes, int rows,     \
                                    int cols, const BlockQ8_1* __restrict__ a,             \
                                    float* __restrict__ out) {                             \
        mmv<T>(w, row_bytes, rows, cols, a, out);                                          \
    }

MMV(mmv_q4_0, TQ4_0)
MMV(mmv_q5_0, TQ5_0)
MMV(mmv_q8_0, TQ8_0)
MMV(mmv_q4_k, TQ4_K)
MMV(mmv_q5_k, TQ5_K)
MMV(mmv_q6_k, TQ6_K)

// Float weights (F32, F16) with float activations, same geometry: lane i takes columns
// i, i+32, ...
template <typename T>
__device__ __forceinline__ void mmv_float(const u8* __restrict__ w, u64 row_bytes, int rows,
                                          int cols, const float* __restrict__ x,
                                          float* __restrict__ out) {
    const int row = blockIdx.x * blockDim.y + threadIdx.y;
    const int t = blockIdx.y;
    if (row >= rows) return;
    const u8* wr = w + (size_t)row * row_bytes;
    const float* xt = x + (size_t)t * cols;
    float acc = 0.0f;
    for (int c = threadIdx.x; c < cols; c += WARP_SIZE) acc += T::elem(wr + (size_t)c * T::BYTES, 0) * xt[c];
    acc = warp_sum(acc);
    if (threadIdx.x == 0) out[(size_t)t * rows + row] = acc;
}

extern "C" __global__ void mmv_f32(const u8* __restrict__ w, u64 row_bytes, int rows, int cols,
                                   const float* __restrict__ x, float* __restrict__ out) {
    mmv_float<TF32>(w, row_bytes, rows, cols, x, out);
}

extern "C" __global__ void mmv_f16(const u8* __restrict__ w, u64 row_bytes, int rows, int cols,
                                   const float* __restrict__ x, float* __restrict__ out) {
    mmv_float<TF16>(w, row_bytes, rows, cols, x, out);
}

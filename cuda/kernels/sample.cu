// Row softmax and greedy argmax over logits.

// In place softmax of each row of `width`. Launch: block (256), grid (n_rows).
extern "C" __global__ void softmax(float* __restrict__ x, int width) {
    __shared__ float scratch[32];
    float* r = x + (size_t)blockIdx.x * width;
    float m = NEG_INF;
    for (int i = threadIdx.x; i < width; i += blockDim.x) m = fmaxf(m, r[i]);
    m = block_max(m, scratch);
    float s = 0.0f;
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        const float e = expf(r[i] - m);
        r[i] = e;
        s += e;
    }
    s = block_sum(s, scratch);
    const float inv = 1.0f / s;
    for (int i = threadIdx.x; i < width; i += blockDim.x) r[i] *= inv;
}

// out[r] = index of the largest value of row r (the lowest index among equal maxima; NaN
// never wins). Launch: block (256), grid (n_rows).
extern "C" __global__ void argmax(const float* __restrict__ x, int width, u32* __restrict__ out) {
    __shared__ float best_v[256];
    __shared__ int best_i[256];
    const float* r = x + (size_t)blockIdx.x * width;
    float bv = NEG_INF;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        const float v = r[i];
        if (v > bv || (v == bv && i < bi)) {
            bv = v;
            bi = i;
        }
    }
    best_v[threadIdx.x] = bv;
    best_i[threadIdx.x] = bi;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) {
            const float ov = best_v[threadIdx.x + s];
            const int oi = best_i[threadIdx.x + s];
            if (ov > best_v[threadIdx.x] || (ov == best_v[threadIdx.x] && oi < best_i[threadIdx.x])) {
                best_v[threadIdx.x] = ov;
                best_i[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = best_i[0] == 0x7fffffff ? 0u : (u32)best_i[0];
}

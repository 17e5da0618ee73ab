// RMSNorm and the element-wise glue of the forward pass.

// y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w (w may be null: no weight), one block per row of
// `width` values. In place is allowed (y == x). Launch: block (256), grid (n_rows).
// The CPU path sums squares in f64; here each thread sums in f32 and the block reduces.
extern "C" __global__ void rms_norm(const float* x, const float* __restrict__ w, float* y,
                                    int width, float eps) {
    __shared__ float scratch[32];
    const float* xr = x + (size_t)blockIdx.x * width;
    float* yr = y + (size_t)blockIdx.x * width;
    float s = 0.0f;
    for (int i = threadIdx.x; i < width; i += blockDim.x) s += xr[i] * xr[i];
    s = block_sum(s, scratch);
    const float scale = rsqrtf(s / (float)width + eps);
    for (int i = threadIdx.x; i < width; i += blockDim.x) {
        const float v = xr[i] * scale;
        yr[i] = w ? v * w[i] : v;
    }
}

// y[i] += s * x[i]. Launch: block (256), grid (ceil(n / 256)).
extern "C" __global__ void add_scaled(float* __restrict__ y, const float* __restrict__ x,
                                      float s, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += s * x[i];
}

// x[i] *= s. Launch: block (256), grid (ceil(n / 256)).
extern "C" __global__ void scale(float* __restrict__ x, float s, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}

// x[r][i] += b[i] for rows of `width`. Launch: block (256), grid (ceil(n_rows * width / 256)).
extern "C" __global__ void add_bias(float* __restrict__ x, const float* __restrict__ b, int width,
                                    int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += b[i % width];
}

// x = cap * tanh(x / cap). Launch: block (256), grid (ceil(n / 256)).
extern "C" __global__ void softcap(float* __restrict__ x, float cap, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = tanhf(x[i] / cap) * cap;
}

// Copies columns [off, off + width) of each `src_width`-wide row of src into dst (rows of
// `width`): splitting fused QKV / gate-up outputs. Launch: block (256), grid
// (ceil(n_rows * width / 256)).
extern "C" __global__ void copy_cols(const float* __restrict__ src, int src_width, int off,
                                     float* __restrict__ dst, int width, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = src[(size_t)(i / width) * src_width + off + i % width];
}

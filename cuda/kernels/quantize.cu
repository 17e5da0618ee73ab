// Activations to Q8_1 blocks of 32, as the CPU path's `q8_1::quantize_row_act`:
// d = amax / 127, q = round-half-even(x * 127 / amax), s = d * sum(q).
// One warp per block of 32: lane i quantizes value i.
// Launch: block (32, 4), grid (ceil(n_blocks / 4)); x is n_rows x n_cols (n_cols % 32 == 0).

extern "C" __global__ void quantize_q8_1(const float* __restrict__ x, BlockQ8_1* __restrict__ out,
                                         int n_blocks) {
    const int ib = blockIdx.x * blockDim.y + threadIdx.y;
    if (ib >= n_blocks) return;
    const int lane = threadIdx.x;
    const float v = x[(size_t)ib * 32 + lane];
    const float amax = warp_max(fabsf(v));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const int q = (int)rintf(v * id);
    const float sum = warp_sum((float)q);
    out[ib].qs[lane] = (i8)q;
    if (lane == 0) {
        out[ib].d = f2h(d);
        out[ib].s = f2h(sum * d);
    }
}

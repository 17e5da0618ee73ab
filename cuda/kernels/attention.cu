// Paged attention over an f16 K/V pool, for decode and prefill alike: query token t (at
// position pos[t] of its sequence) attends to that sequence's positions lo..=pos[t], where
// lo = pos[t] + 1 - window with a sliding window (0 when none). Position j of the sequence
// lives in slot tables[t][j / block_size] * block_size + j % block_size of the pool (a table
// entry < 0 is a block released by the window: skipped). GQA: head h reads KV head
// h / (n_head / n_head_kv). Score = kq_scale * softcap(q . k) with softcap(x) =
// c * tanh(x / c) when c > 0 (Gemma 2). Q is rounded to f16 first, as the CPU path does for
// an f16 cache. cuda/src/paged.rs mirrors the slot math and builds the tables.
//
// One block per (head, token); each of its ATT_WARPS warps walks every ATT_WARPS-th key with
// an online softmax (lanes split the head dims), then warp 0 merges the warps' partials.
// Launch (geometry.rs, `attention`): block (32, ATT_WARPS), grid (n_head, n_tokens).
// head_dim_k, head_dim_v <= ATT_MAX_DIM.

#define ATT_WARPS 4
#define ATT_MAX_DIM 256
#define ATT_PER_LANE (ATT_MAX_DIM / WARP_SIZE)

struct AttnParams {
    int n_head, n_head_kv, head_dim_k, head_dim_v;
    int block_size, max_blocks, k_row, v_row;
    float kq_scale, softcap;
    int window;
};

extern "C" __global__ void paged_attention(const float* __restrict__ q,
                                           const u16* __restrict__ k_pool,
                                           const u16* __restrict__ v_pool,
                                           const i32* __restrict__ tables,
                                           const i32* __restrict__ pos, float* __restrict__ out,
                                           AttnParams p) {
    __shared__ float q_s[ATT_MAX_DIM];
    __shared__ float m_s[ATT_WARPS], l_s[ATT_WARPS];
    __shared__ float acc_s[ATT_WARPS][ATT_MAX_DIM];
    const int h = blockIdx.x, t = blockIdx.y;
    const int lane = threadIdx.x, warp = threadIdx.y;
    const int kvh = h / (p.n_head / p.n_head_kv);
    const int tid = warp * WARP_SIZE + lane;

    const float* qh = q + ((size_t)t * p.n_head + h) * p.head_dim_k;
    for (int d = tid; d < p.head_dim_k; d += WARP_SIZE * ATT_WARPS) q_s[d] = h2f(f2h(qh[d]));
    __syncthreads();

    const int end = pos[t];
    const int lo = p.window > 0 ? max(0, end + 1 - p.window) : 0;
    const i32* table = tables + (size_t)t * p.max_blocks;

    float m = NEG_INF, l = 0.0f;
    float acc[ATT_PER_LANE];
#pragma unroll
    for (int i = 0; i < ATT_PER_LANE; ++i) acc[i] = 0.0f;

    for (int j = lo + warp; j <= end; j += ATT_WARPS) {
        const int blk = table[j / p.block_size];
        if (blk < 0) continue;
        const size_t slot = (size_t)blk * p.block_size + j % p.block_size;
        const u16* kr = k_pool + slot * p.k_row + (size_t)kvh * p.head_dim_k;
        float s = 0.0f;
        for (int d = lane; d < p.head_dim_k; d += WARP_SIZE) s += q_s[d] * h2f(kr[d]);
        s = warp_sum(s);
        if (p.softcap > 0.0f) s = tanhf(s / p.softcap) * p.softcap;
        s *= p.kq_scale;
        const float m_new = fmaxf(m, s);
        const float corr = expf(m - m_new), e = expf(s - m_new);
        l = l * corr + e;
        const u16* vr = v_pool + slot * p.v_row + (size_t)kvh * p.head_dim_v;
#pragma unroll
        for (int i = 0; i < ATT_PER_LANE; ++i) {
            const int d = lane + i * WARP_SIZE;
            if (d < p.head_dim_v) acc[i] = acc[i] * corr + e * h2f(vr[d]);
        }
        m = m_new;
    }

    if (lane == 0) {
        m_s[warp] = m;
        l_s[warp] = l;
    }
#pragma unroll
    for (int i = 0; i < ATT_PER_LANE; ++i) {
        const int d = lane + i * WARP_SIZE;
        if (d < p.head_dim_v) acc_s[warp][d] = acc[i];
    }
    __syncthreads();
    if (warp != 0) return;
    float mx = NEG_INF;
    for (int w = 0; w < ATT_WARPS; ++w) mx = fmaxf(mx, m_s[w]);
    float f[ATT_WARPS], total = 0.0f;
    for (int w = 0; w < ATT_WARPS; ++w) {
        f[w] = l_s[w] > 0.0f ? expf(m_s[w] - mx) : 0.0f;
        total += l_s[w] * f[w];
    }
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;
    float* o = out + ((size_t)t * p.n_head + h) * p.head_dim_v;
    for (int d = lane; d < p.head_dim_v; d += WARP_SIZE) {
        float v = 0.0f;
        for (int w = 0; w < ATT_WARPS; ++w) v += acc_s[w][d] * f[w];
        o[d] = v * inv;
    }
}

// Stores token t's K and V rows (f32) as f16 in pool slot slots[t].
// Launch: block (256), grid (n_tokens).
extern "C" __global__ void kv_store(const float* __restrict__ k, const float* __restrict__ v,
                                    const i32* __restrict__ slots, u16* __restrict__ k_pool,
                                    u16* __restrict__ v_pool, int k_row, int v_row) {
    const int t = blockIdx.x;
    const size_t slot = (size_t)slots[t];
    for (int i = threadIdx.x; i < k_row; i += blockDim.x)
        k_pool[slot * k_row + i] = f2h(k[(size_t)t * k_row + i]);
    for (int i = threadIdx.x; i < v_row; i += blockDim.x)
        v_pool[slot * v_row + i] = f2h(v[(size_t)t * v_row + i]);
}

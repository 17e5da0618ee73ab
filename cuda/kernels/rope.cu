// Rotary position embedding, in place, for `n_tokens` rows of `n_heads` heads of `head_dim`
// values; the first `n_rot` dims of each head rotate. Normal mode rotates adjacent pairs
// (2i, 2i+1); NeoX mode pairs i and i + n_rot/2. The angle of pair i at position p is
// p * base^(-2i/n_rot) / ff[i] with linear scaling and YaRN as ggml's rope_yarn
// (freq_scale, ext_factor, attn_factor, corr_dims); ff (frequency factors) may be null.
// Launch (geometry.rs, `rope`): block (min(n_rot/2, 128)), grid (n_heads, n_tokens).

struct RopeParams {
    int n_heads, head_dim, n_rot, neox;
    float base, freq_scale, ext_factor, attn_factor, corr0, corr1;
};

extern "C" __global__ void rope(float* __restrict__ x, const i32* __restrict__ pos,
                                const float* __restrict__ ff, RopeParams p) {
    const int h = blockIdx.x, t = blockIdx.y;
    float* head = x + ((size_t)t * p.n_heads + h) * p.head_dim;
    const int half = p.n_rot / 2;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        const float theta_scale = powf(p.base, -2.0f / (float)p.n_rot);
        const float theta_extrap = (float)pos[t] * powf(theta_scale, (float)i) / (ff ? ff[i] : 1.0f);
        const float theta_interp = p.freq_scale * theta_extrap;
        float theta = theta_interp, mscale = p.attn_factor;
        if (p.ext_factor != 0.0f) {
            const float y = ((float)i - p.corr0) / fmaxf(0.001f, p.corr1 - p.corr0);
            const float ramp = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * p.ext_factor;
            theta = theta_interp * (1.0f - ramp) + theta_extrap * ramp;
            mscale *= 1.0f + 0.1f * logf(1.0f / p.freq_scale);
        }
        const float c = cosf(theta) * mscale, s = sinf(theta) * mscale;
        const int i0 = p.neox ? i : 2 * i;
        const int i1 = p.neox ? i + half : 2 * i + 1;
        const float a = head[i0], b = head[i1];
        head[i0] = a * c - b * s;
        head[i1] = a * s + b * c;
    }
}

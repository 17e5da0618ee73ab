// Gated activations: gate[i] = act(gate[i]) * up[i].
// Launch: block (256), grid (ceil(n / 256)).

extern "C" __global__ void swiglu(float* __restrict__ gate, const float* __restrict__ up, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float x = gate[i];
    gate[i] = x / (1.0f + expf(-x)) * up[i];
}

// GELU with ggml's tanh approximation, 0.5 x (1 + tanh(sqrt(2/pi) x (1 + 0.044715 x^2))), and
// ggml's clamps (0 below -10, x above 10). The CPU path (like ggml's) looks the value up in an
// f16 table indexed by f16(x); this computes it in f32, so values differ by that rounding.
__device__ __forceinline__ float gelu_tanh(float x) {
    if (x <= -10.0f) return 0.0f;
    if (x >= 10.0f) return x;
    const float inner = fmaf(0.044715f * x, x, 1.0f);
    return 0.5f * x * (1.0f + tanhf(0.7978846f * x * inner));
}

extern "C" __global__ void geglu(float* __restrict__ gate, const float* __restrict__ up, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    gate[i] = gelu_tanh(gate[i]) * up[i];
}

// Prelude of every nanorun CUDA module (prepended by the host before NVRTC compiles a module;
// no system header is included, so nothing but NVRTC itself is needed).
//
// Layout conventions shared with the Rust side (cuda/src/layout.rs mirrors them):
// - weights stay in ggml's block layout, row-major, `row_bytes` apart;
// - activations for the mat-vec kernels are Q8_1 blocks of 32 (`BlockQ8_1`, 36 bytes);
// - f16 values travel as raw `u16` bits and are converted with `cvt` instructions.

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;

#define WARP_SIZE 32
#define FULL_MASK 0xffffffffu
#define NEG_INF __int_as_float(0xff800000)

#ifdef NANORUN_HOST_EMULATION
// The CPU emulation (kernels/emu_shim.h, `Gpu::emulated`): the compiler's
// _Float16, round-to-nearest-even like cvt.rn.
__device__ __forceinline__ float h2f(u16 h) {
    _Float16 v;
    memcpy(&v, &h, 2);
    return (float)v;
}

__device__ __forceinline__ u16 f2h(float f) {
    const _Float16 v = (_Float16)f;
    u16 h;
    memcpy(&h, &v, 2);
    return h;
}
#else
__device__ __forceinline__ float h2f(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ u16 f2h(float f) {
    u16 h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
}
#endif

// Little-endian loads that need no alignment beyond a byte.
__device__ __forceinline__ u16 ld_u16(const u8* p) { return (u16)p[0] | ((u16)p[1] << 8); }
__device__ __forceinline__ u32 ld_u32(const u8* p) {
    return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24);
}
__device__ __forceinline__ float ld_f16(const u8* p) { return h2f(ld_u16(p)); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = WARP_SIZE / 2; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = WARP_SIZE / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, o));
    return v;
}

// Sum over a whole block of at most 1024 threads (a multiple of 32); every thread gets it.
// `scratch` holds 32 floats of shared memory.
__device__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
    const int n_warps = (blockDim.x + WARP_SIZE - 1) / WARP_SIZE;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

__device__ float block_max(float v, float* scratch) {
    const int lane = threadIdx.x % WARP_SIZE, warp = threadIdx.x / WARP_SIZE;
    const int n_warps = (blockDim.x + WARP_SIZE - 1) / WARP_SIZE;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : NEG_INF;
    return warp_max(v);
}

// Q8_1 activation block: d and s = d * sum(qs) as f16 bits, 32 quants. 36 bytes, as ggml.
struct BlockQ8_1 {
    u16 d;
    u16 s;
    i8 qs[32];
};

// A CPU emulation of the CUDA execution model, enough to run nanorun's kernel sources
// unchanged under g++ in the tests (cuda/tests/emulated.rs). Not a GPU: every thread of a
// block is an OS thread; __syncthreads is a block barrier; warp shuffles exchange through a
// per-warp buffer between two warp barriers; `__shared__` arrays are statics, correct
// because blocks run one after another (and the test harness runs one launch at a time). A
// thread that returns drops out of its barriers.
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#define NANORUN_HOST_EMULATION 1

struct EmuDim3 {
    unsigned x = 1, y = 1, z = 1;
};

struct EmuThread {
    EmuDim3 tid, bid, bdim, gdim;
    std::barrier<>* block = nullptr;
    std::barrier<>* warp = nullptr;
    unsigned lane = 0, warp_id = 0;
};

static thread_local EmuThread emu;
struct EmuWarpBuf {
    float v[32];
};
static EmuWarpBuf* emu_warp_bufs = nullptr;

#define threadIdx (emu.tid)
#define blockIdx (emu.bid)
#define blockDim (emu.bdim)
#define gridDim (emu.gdim)
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

using std::max;
using std::min;

inline void __syncthreads() { emu.block->arrive_and_wait(); }

inline float __shfl_xor_sync(unsigned, float v, int mask) {
    EmuWarpBuf& w = emu_warp_bufs[emu.warp_id];
    w.v[emu.lane] = v;
    emu.warp->arrive_and_wait();
    const float r = w.v[emu.lane ^ (unsigned)mask];
    emu.warp->arrive_and_wait();
    return r;
}

inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }

// Runs kernel `k` over grid `g` of blocks `b`, its arguments given as cuLaunchKernel's
// kernelParams (an array of pointers to each argument's value).
template <typename... A, std::size_t... I>
std::tuple<A...> emu_args(void** args, std::index_sequence<I...>) {
    return std::tuple<A...>(*static_cast<A*>(args[I])...);
}

template <typename... A>
void emu_launch(void (*k)(A...), const unsigned* g, const unsigned* b, void** args) {
    const std::tuple<A...> vals = emu_args<A...>(args, std::index_sequence_for<A...>{});
    const unsigned n = b[0] * b[1] * b[2];
    const unsigned n_warps = (n + 31) / 32;
    for (unsigned bz = 0; bz < g[2]; ++bz)
        for (unsigned by = 0; by < g[1]; ++by)
            for (unsigned bx = 0; bx < g[0]; ++bx) {
                std::barrier<> block((std::ptrdiff_t)n);
                std::vector<std::unique_ptr<std::barrier<>>> warps;
                for (unsigned w = 0; w < n_warps; ++w)
                    warps.push_back(std::make_unique<std::barrier<>>(
                        (std::ptrdiff_t)std::min(32u, n - 32 * w)));
                std::vector<EmuWarpBuf> bufs(n_warps);
                emu_warp_bufs = bufs.data();
                std::vector<std::thread> threads;
                threads.reserve(n);
                for (unsigned t = 0; t < n; ++t) {
                    threads.emplace_back([&, t] {
                        emu.tid = {t % b[0], (t / b[0]) % b[1], t / (b[0] * b[1])};
                        emu.bid = {bx, by, bz};
                        emu.bdim = {b[0], b[1], b[2]};
                        emu.gdim = {g[0], g[1], g[2]};
                        emu.block = &block;
                        emu.warp = warps[t / 32].get();
                        emu.lane = t % 32;
                        emu.warp_id = t / 32;
                        std::apply(k, vals);
                        emu.warp->arrive_and_drop();
                        emu.block->arrive_and_drop();
                    });
                }
                for (auto& th : threads) th.join();
            }
}

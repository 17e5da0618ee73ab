// A CPU emulation of the CUDA execution model, enough to run nanorun's kernel sources
// unchanged under g++ (`Gpu::emulated`, src/emulate.rs). Not a GPU: the threads of a block
// are fibers on the calling thread (a register switch on x86-64, ucontext elsewhere),
// switched round-robin whenever one waits;
// __syncthreads is a block barrier; warp shuffles exchange through a per-warp buffer between
// two warp barriers; `__shared__` arrays are statics, correct because blocks run one after
// another (and the host runs one launch at a time). A thread that returns drops out of its
// barriers.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <tuple>
#include <ucontext.h>
#include <utility>
#include <vector>

#define NANORUN_HOST_EMULATION 1

struct EmuDim3 {
    unsigned x = 1, y = 1, z = 1;
};

// A barrier among fibers: arrive, then yield until the generation moves on.
struct EmuBarrier {
    int expected = 0, arrived = 0;
    unsigned gen = 0;
};

struct EmuThread {
    EmuDim3 tid;
    unsigned lane = 0, warp_id = 0;
    bool done = false;
    ucontext_t ctx;
    void* sp = nullptr;  // saved stack pointer (fast switch)
};

static EmuDim3 emu_bid, emu_bdim, emu_gdim;
static EmuThread* emu_cur = nullptr;
static ucontext_t emu_sched;
static void* emu_sched_sp = nullptr;
static EmuBarrier emu_block;
static std::vector<EmuBarrier> emu_warps;
struct EmuWarpBuf {
    float v[32];
};
static std::vector<EmuWarpBuf> emu_warp_bufs;

#define threadIdx (emu_cur->tid)
#define blockIdx (emu_bid)
#define blockDim (emu_bdim)
#define gridDim (emu_gdim)
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

using std::max;
using std::min;

#if defined(__x86_64__)
// Fiber switches without ucontext's signal-mask system call: save the callee-saved registers
// on the old stack, switch stacks, restore them from the new one (System V x86-64).
extern "C" void nanorun_emu_switch(void** from_sp, void* to_sp);
asm(R"(
    .text
    .globl nanorun_emu_switch
    .hidden nanorun_emu_switch
    .type nanorun_emu_switch,@function
nanorun_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size nanorun_emu_switch, .-nanorun_emu_switch
)");
#define NANORUN_EMU_FAST_SWITCH 1
#endif

static inline void emu_to_sched();
static inline void emu_yield() { emu_to_sched(); }

static inline void emu_arrive_and_wait(EmuBarrier& b) {
    const unsigned gen = b.gen;
    if (++b.arrived == b.expected) {
        b.arrived = 0;
        ++b.gen;
        return;
    }
    while (b.gen == gen) emu_yield();
}

static inline void emu_drop(EmuBarrier& b) {
    --b.expected;
    if (b.arrived > 0 && b.arrived == b.expected) {
        b.arrived = 0;
        ++b.gen;
    }
}

inline void __syncthreads() { emu_arrive_and_wait(emu_block); }

inline float __shfl_xor_sync(unsigned, float v, int mask) {
    EmuWarpBuf& w = emu_warp_bufs[emu_cur->warp_id];
    w.v[emu_cur->lane] = v;
    emu_arrive_and_wait(emu_warps[emu_cur->warp_id]);
    const float r = w.v[emu_cur->lane ^ (unsigned)mask];
    emu_arrive_and_wait(emu_warps[emu_cur->warp_id]);
    return r;
}

inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }

template <typename... A, std::size_t... I>
std::tuple<A...> emu_args(void** args, std::index_sequence<I...>) {
    return std::tuple<A...>(*static_cast<A*>(args[I])...);
}

#ifdef NANORUN_EMU_FAST_SWITCH
static inline void emu_to_sched() { nanorun_emu_switch(&emu_cur->sp, emu_sched_sp); }
static inline void emu_to_fiber(EmuThread& t) { nanorun_emu_switch(&emu_sched_sp, t.sp); }
#else
static inline void emu_to_sched() { swapcontext(&emu_cur->ctx, &emu_sched); }
static inline void emu_to_fiber(EmuThread& t) { swapcontext(&emu_sched, &t.ctx); }
#endif

// The fiber body: runs the kernel, then leaves its barriers; never returns.
static void (*emu_body)() = nullptr;
static void emu_fiber_entry() {
    emu_body();
    emu_drop(emu_warps[emu_cur->warp_id]);
    emu_drop(emu_block);
    emu_cur->done = true;
    emu_to_sched();
    abort();  // a finished fiber is never resumed
}

// Prepares fiber `t` to start in emu_fiber_entry on `stack_lo..stack_lo + size`.
static void emu_fiber_init(EmuThread& t, char* stack_lo, std::size_t size) {
#ifdef NANORUN_EMU_FAST_SWITCH
    // The frame nanorun_emu_switch pops: six registers, then the return address, placed so
    // that the entry sees the stack alignment of a call.
    uintptr_t top = ((uintptr_t)(stack_lo + size)) & ~(uintptr_t)15;
    void** frame = (void**)(top - 16);
    frame[0] = (void*)&emu_fiber_entry;
    frame[1] = nullptr;
    void** regs = frame - 6;
    for (int i = 0; i < 6; ++i) regs[i] = nullptr;
    t.sp = regs;
#else
    getcontext(&t.ctx);
    t.ctx.uc_stack.ss_sp = stack_lo;
    t.ctx.uc_stack.ss_size = size;
    t.ctx.uc_link = nullptr;
    makecontext(&t.ctx, emu_fiber_entry, 0);
#endif
}

template <typename... A>
struct EmuKernel {
    static inline void (*k)(A...) = nullptr;
    static inline const std::tuple<A...>* vals = nullptr;
    static void run() { std::apply(k, *vals); }
};

// Runs kernel `k` over grid `g` of blocks `b`, its arguments given as cuLaunchKernel's
// kernelParams (an array of pointers to each argument's value). The threads of a block are
// fibers on the calling thread, switched round-robin whenever one waits at a barrier.
template <typename... A>
void emu_launch(void (*k)(A...), const unsigned* g, const unsigned* b, void** args) {
    const std::tuple<A...> vals = emu_args<A...>(args, std::index_sequence_for<A...>{});
    EmuKernel<A...>::k = k;
    EmuKernel<A...>::vals = &vals;
    emu_body = &EmuKernel<A...>::run;
    const unsigned n = b[0] * b[1] * b[2];
    const unsigned n_warps = (n + 31) / 32;
    // Fiber stacks, kept between launches (allocating and faulting them in per launch
    // dominated the run time).
    const std::size_t stack = 64 * 1024;
    static std::unique_ptr<char[]> stacks;
    static unsigned n_stacks = 0;
    if (n_stacks < n) {
        stacks.reset(new char[(std::size_t)n * stack]);
        n_stacks = n;
    }
    std::vector<EmuThread> threads(n);
    emu_bdim = {b[0], b[1], b[2]};
    emu_gdim = {g[0], g[1], g[2]};
    for (unsigned bz = 0; bz < g[2]; ++bz)
        for (unsigned by = 0; by < g[1]; ++by)
            for (unsigned bx = 0; bx < g[0]; ++bx) {
                emu_bid = {bx, by, bz};
                emu_block = EmuBarrier{(int)n, 0, 0};
                emu_warps.assign(n_warps, EmuBarrier{});
                for (unsigned w = 0; w < n_warps; ++w)
                    emu_warps[w].expected = (int)std::min(32u, n - 32 * w);
                emu_warp_bufs.assign(n_warps, EmuWarpBuf{});
                for (unsigned t = 0; t < n; ++t) {
                    EmuThread& th = threads[t];
                    th.tid = {t % b[0], (t / b[0]) % b[1], t / (b[0] * b[1])};
                    th.lane = t % 32;
                    th.warp_id = t / 32;
                    th.done = false;
                    emu_fiber_init(th, stacks.get() + (std::size_t)t * stack, stack);
                }
                for (unsigned left = n; left > 0;) {
                    left = 0;
                    for (unsigned t = 0; t < n; ++t) {
                        if (threads[t].done) continue;
                        emu_cur = &threads[t];
                        emu_to_fiber(threads[t]);
                        left += threads[t].done ? 0 : 1;
                    }
                }
            }
}

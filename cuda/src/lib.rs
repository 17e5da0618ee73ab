//! nanorun-cuda: the CUDA side of nanorun.
//!
//! CUDA C kernels (`cuda/kernels/*.cu`, compiled into the binary) are compiled at start-up
//! with NVRTC for the device's compute capability and cached as PTX; weights are uploaded once
//! in their ggml block layout; the host side launches the kernels through cudarc.
//!
//! cudarc is used with *dynamic loading*: nothing CUDA is needed to build this crate or to run
//! its tests, and the driver and NVRTC are dlopen'ed on first use. cudarc panics when a library
//! is absent, so every entry point first asks [`probe`], which turns absence into a
//! [`CudaError`] naming the library and how to get it.
//!
//! # Map
//! - [`probe`]: is the driver there, a device, NVRTC? (`NANORUN_NVRTC_LIB` loads NVRTC from a
//!   file, such as the one `pip install nvidia-cuda-nvrtc-cu12` installs.)
//! - [`source`]: the kernel modules and the kernels each defines.
//! - [`compile`]: NVRTC compilation and the PTX cache (keyed by source, arch and options).
//! - [`layout`]: weight types the kernels read, their block geometry, and a Rust mirror of the
//!   kernels' per-element index math (tested against the CPU dequantizers).
//! - [`geometry`]: the launch geometry of every kernel.
//! - [`paged`]: block tables of the paged KV cache flattened for the attention kernel, and the
//!   slot arithmetic the kernel uses.
//! - [`device`]: [`Gpu`], a context with the modules loaded, device buffers and one method per
//!   kernel launch; or, for tests, the CPU emulation of a device ([`Gpu::emulated`]).
//! - [`emulate`]: that emulation: the same kernel sources built by g++ with a small CUDA
//!   shim (`kernels/emu_shim.h`), launched with the same geometry and arguments.
//!
//! # What is verified
//! Without a GPU: every module compiles to PTX with NVRTC for sm_80, sm_87 and sm_90, every
//! launch's arguments match the PTX, the host-side arithmetic is unit-tested, and every kernel
//! runs under the CPU emulation against scalar references. Results on a real device are *not*
//! verified on a machine without one; the GPU tests skip and say so. See `docs/cuda.md`.

#![warn(missing_docs)]

pub mod compile;
pub mod device;
pub mod emulate;
mod error;
pub mod geometry;
pub mod layout;
pub mod paged;
pub mod probe;
pub mod source;

pub use compile::Arch;
pub use device::{DevBuf, DeviceWeight, Gpu};
pub use error::{CudaError, Result};
pub use layout::WeightType;

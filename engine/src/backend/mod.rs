//! Backends: where a model's forward pass runs. A [`Backend`] takes one [`Batch`] over the KV
//! cache's block tables and returns the logits of the tokens that asked for them — the
//! contract of [`Model::forward`]. The CPU backend is the [`ForwardState`] itself; the CUDA
//! backend (cargo feature `cuda`, see `docs/cuda.md`) keeps the weights and a K/V pool on the
//! GPU and reads the same block tables, so the scheduler and the KV bookkeeping do not change.

use crate::batch::Batch;
use crate::error::{EngineError, Result};
use crate::kv::KvCache;
use crate::model::{ForwardState, Model};

#[cfg(feature = "cuda")]
pub mod cuda;

/// Runs forward passes of a model.
pub trait Backend: Send {
    /// `"cpu"` or `"cuda"`.
    fn name(&self) -> &'static str;

    /// Runs `batch` through `model`, storing its K/V at the slots `kv` gives (space reserved
    /// with [`KvCache::grow_to`]). Returns the logits of the tokens that asked for them,
    /// `n_outputs × n_vocab`, in batch order.
    fn forward<'s>(
        &'s mut self,
        model: &Model,
        batch: &Batch,
        kv: &mut KvCache,
    ) -> Result<&'s [f32]>;
}

/// The CPU backend: the forward pass's buffers and thread pool.
pub type CpuBackend = ForwardState;

impl Backend for ForwardState {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn forward<'s>(
        &'s mut self,
        model: &Model,
        batch: &Batch,
        kv: &mut KvCache,
    ) -> Result<&'s [f32]> {
        model.forward(batch, kv, self)
    }
}

/// Where to run: the CPU, or CUDA device `n`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// The CPU kernels.
    #[default]
    Cpu,
    /// CUDA device with this ordinal.
    Cuda(usize),
}

impl std::str::FromStr for Device {
    type Err = String;

    /// `cpu`, `cuda` (device 0) or `cuda:N`.
    fn from_str(s: &str) -> std::result::Result<Device, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device '{s}' (expected cpu, cuda or cuda:N)")),
        }
    }
}

/// Whether this build has the CUDA backend (cargo feature `cuda`).
pub const CUDA_BUILT: bool = cfg!(feature = "cuda");

/// Checks that CUDA device `ordinal` can be used: an error that names the reason (a build
/// without the `cuda` feature, no driver, no device, no NVRTC) when it cannot.
pub fn check_cuda(ordinal: usize) -> Result<()> {
    #[cfg(feature = "cuda")]
    {
        let n =
            nanorun_cuda::probe::device_count().map_err(|e| EngineError::Backend(e.to_string()))?;
        if ordinal >= n as usize {
            return Err(EngineError::Backend(format!(
                "CUDA device {ordinal} requested, only {n} present"
            )));
        }
        nanorun_cuda::probe::ensure_nvrtc().map_err(|e| EngineError::Backend(e.to_string()))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = ordinal;
        Err(no_cuda_build())
    }
}

#[cfg(not(feature = "cuda"))]
fn no_cuda_build() -> EngineError {
    EngineError::Backend(
        "this nanorun was built without CUDA support (rebuild with `--features cuda`)".into(),
    )
}

/// A backend for `model` on `device`: the CPU with `n_threads` threads, or a CUDA device
/// (weights uploaded now). Errors name why CUDA cannot be used.
pub fn open(model: &Model, device: Device, n_threads: usize) -> Result<Box<dyn Backend>> {
    match device {
        Device::Cpu => Ok(Box::new(ForwardState::new(n_threads))),
        #[cfg(feature = "cuda")]
        Device::Cuda(ordinal) => {
            check_cuda(ordinal)?;
            Ok(Box::new(cuda::CudaBackend::new(model, ordinal)?))
        }
        #[cfg(not(feature = "cuda"))]
        Device::Cuda(_) => {
            let _ = model;
            Err(no_cuda_build())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_as_on_the_command_line() {
        assert_eq!("cpu".parse::<Device>(), Ok(Device::Cpu));
        assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
        assert_eq!("cuda:3".parse::<Device>(), Ok(Device::Cuda(3)));
        for bad in ["gpu", "cuda:", "cuda:x", "CUDA", ""] {
            let e = bad.parse::<Device>().unwrap_err();
            assert!(e.contains("expected cpu, cuda or cuda:N"), "{bad}: {e}");
        }
        assert_eq!(Device::default(), Device::Cpu);
    }

    #[test]
    fn check_cuda_names_why_cuda_cannot_run() {
        match check_cuda(0) {
            Ok(()) => println!("SKIPPED: this machine can run CUDA"),
            Err(e) => {
                let msg = e.to_string();
                if CUDA_BUILT {
                    assert!(
                        ["driver", "device", "NVRTC"]
                            .iter()
                            .any(|w| msg.contains(w)),
                        "{msg}"
                    );
                } else {
                    assert!(msg.contains("--features cuda"), "{msg}");
                }
            }
        }
    }
}

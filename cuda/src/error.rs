//! The CUDA backend's error type: every variant says what is missing or wrong.

/// Result alias for the CUDA backend.
pub type Result<T, E = CudaError> = std::result::Result<T, E>;

/// What went wrong finding, starting or driving the GPU.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// A shared library the backend loads at run time is not on this machine.
    #[error("{what} not found ({hint})")]
    LibraryMissing {
        /// The library, in words ("the CUDA driver library").
        what: &'static str,
        /// The file names that were tried (for debugging; not in the message).
        names: String,
        /// How to get it.
        hint: &'static str,
    },
    /// `NANORUN_NVRTC_LIB` names a file that cannot be loaded.
    #[error("NANORUN_NVRTC_LIB={path}: cannot load it: {reason}")]
    NvrtcPath {
        /// The path from the variable.
        path: String,
        /// The loader's message.
        reason: String,
    },
    /// The driver loaded but reports no CUDA device.
    #[error("no CUDA device: the driver is installed but reports {0} devices")]
    NoDevice(i32),
    /// A device ordinal beyond the devices present.
    #[error("CUDA device {ordinal} requested, only {count} present")]
    BadOrdinal {
        /// Requested ordinal.
        ordinal: usize,
        /// Devices present.
        count: i32,
    },
    /// A call into the CUDA driver failed.
    #[error("CUDA driver: {0}")]
    Driver(#[from] cudarc::driver::DriverError),
    /// NVRTC rejected a kernel source.
    #[error("NVRTC could not compile kernel module '{module}' for {arch}:\n{log}")]
    Compile {
        /// Module name (the `.cu` file).
        module: &'static str,
        /// Target (`compute_80`).
        arch: String,
        /// NVRTC's log.
        log: String,
    },
    /// A weight tensor has a type the CUDA kernels do not handle.
    #[error("tensor '{tensor}': type {ty} has no CUDA kernel (supported: {supported})")]
    UnsupportedType {
        /// Tensor name.
        tensor: String,
        /// Its type.
        ty: String,
        /// The types that are supported.
        supported: String,
    },
    /// The CPU emulation of the device could not be built or run.
    #[error("CUDA emulation: {0}")]
    Emulation(String),
    /// Sizes that do not fit a kernel's contract (a bug in the caller or a malformed model).
    #[error("bad shape: {0}")]
    Shape(String),
}

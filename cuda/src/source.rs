//! The CUDA C sources, compiled into the binary, and the kernels each module defines.
//!
//! Every module is compiled on its own as [`PRELUDE`] followed by its body, so a module needs
//! nothing but NVRTC (no system or CUDA headers).

/// Shared definitions prepended to every module: integer types, f16 conversion, warp and
/// block reductions, the Q8_1 block, and the weight block types.
pub const PRELUDE: &str = concat!(
    include_str!("../kernels/common.cuh"),
    "\n",
    include_str!("../kernels/quants.cuh"),
    "\n"
);

/// One `.cu` file: its name, its body and the `extern "C"` kernels it defines.
#[derive(Clone, Copy, Debug)]
pub struct ModuleSource {
    /// Module name (the file name without `.cu`).
    pub name: &'static str,
    /// The file's text.
    pub body: &'static str,
    /// The kernels the host loads from it.
    pub kernels: &'static [&'static str],
}

impl ModuleSource {
    /// The text NVRTC compiles: the prelude, then the body.
    pub fn full_source(&self) -> String {
        let mut s = String::with_capacity(PRELUDE.len() + self.body.len() + 64);
        s.push_str(PRELUDE);
        s.push_str("\n// ---- ");
        s.push_str(self.name);
        s.push_str(".cu ----\n");
        s.push_str(self.body);
        s
    }
}

macro_rules! module {
    ($name:literal, [$($k:literal),* $(,)?]) => {
        ModuleSource {
            name: $name,
            body: include_str!(concat!("../kernels/", $name, ".cu")),
            kernels: &[$($k),*],
        }
    };
}

/// Every module, in load order.
pub const MODULES: &[ModuleSource] = &[
    module!("quantize", ["quantize_q8_1"]),
    module!(
        "matvec",
        [
            "mmv_q4_0", "mmv_q5_0", "mmv_q8_0", "mmv_q4_k", "mmv_q5_k", "mmv_q6_k", "mmv_f32",
            "mmv_f16"
        ]
    ),
    module!(
        "matmul",
        [
            "mm_f32",
            "mm_f16",
            "mm_q4_0",
            "mm_q5_0",
            "mm_q8_0",
            "mm_q4_k",
            "mm_q5_k",
            "mm_q6_k",
            "get_rows_f32",
            "get_rows_f16",
            "get_rows_q4_0",
            "get_rows_q5_0",
            "get_rows_q8_0",
            "get_rows_q4_k",
            "get_rows_q5_k",
            "get_rows_q6_k",
        ]
    ),
    module!(
        "norm",
        [
            "rms_norm",
            "add_scaled",
            "scale",
            "add_bias",
            "softcap",
            "copy_cols"
        ]
    ),
    module!("act", ["swiglu", "geglu"]),
    module!("rope", ["rope"]),
    module!("attention", ["paged_attention", "kv_store"]),
    module!("sample", ["softmax", "argmax"]),
];

/// The module that defines `kernel`, if any.
pub fn module_of(kernel: &str) -> Option<&'static ModuleSource> {
    MODULES.iter().find(|m| m.kernels.contains(&kernel))
}

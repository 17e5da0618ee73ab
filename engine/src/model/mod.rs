//! A loaded model: config, weights (views into the mmap) and the batch-first forward pass.

pub mod attention;
mod attention_rows;
mod attention_tiled;
mod attention_tiled_x4;
pub mod config;
pub mod encoder;
pub mod encoder_config;
mod f16_replay;
pub mod f16ops;
mod forward;
pub mod ops;
pub mod profile;
mod rope_tables;
pub mod ssm;
pub mod weights;

use std::path::Path;
use std::sync::Arc;

use nanorun_formats::Gguf;
use nanorun_kernels::Kernels;

pub use config::{Arch, ModelConfig};
pub use encoder::{EmbedState, Embedder};
pub use forward::ForwardState;
pub use weights::Weights;

use crate::error::{EngineError, Result};

/// A model ready to run: its file (mapped), hyper-parameters and tensors.
pub struct Model {
    gguf: Arc<Gguf>,
    config: ModelConfig,
    weights: Weights,
    kernels: &'static Kernels,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("arch", &self.config.arch)
            .field("n_layer", &self.config.n_layer())
            .finish()
    }
}

impl Model {
    /// Opens `path` and loads the model with the best kernels for this CPU (or the ISA named
    /// by `NANORUN_ISA`), its matrices laid out as those kernels run them fastest.
    pub fn open(path: impl AsRef<Path>) -> Result<Model> {
        let gguf = Gguf::open(path)?;
        Model::from_gguf(Arc::new(gguf), Kernels::active()?)
    }

    /// Loads the model in an opened file with the given kernels (see [`Weights::repack`] for
    /// the layouts).
    pub fn from_gguf(gguf: Arc<Gguf>, kernels: &'static Kernels) -> Result<Model> {
        if let Ok(arch) = gguf.architecture() {
            if encoder_config::EncoderArch::is_encoder(arch) {
                return Err(EngineError::InvalidRequest(format!(
                    "'{arch}' is an embedding model: run it with `nanorun embed` or `Embedder`"
                )));
            }
        }
        let n_vocab = gguf
            .tensor("token_embd.weight")
            .ok_or_else(|| EngineError::MissingTensor {
                name: "token_embd.weight".into(),
            })?
            .dims
            .get(1)
            .copied()
            .unwrap_or(0) as usize;
        let config = ModelConfig::from_gguf(&gguf, n_vocab)?;
        let mut weights = Weights::load(&gguf, &config, kernels)?;
        weights.repack(&gguf, kernels)?;
        Ok(Model {
            gguf,
            config,
            weights,
            kernels,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The tensors.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// The GGUF file.
    pub fn gguf(&self) -> &Arc<Gguf> {
        &self.gguf
    }

    /// Drops the matrices repacked for the CPU kernels at load, for a backend that uploads the
    /// file's bytes instead: their memory is freed and CPU matmuls read the file again.
    pub fn drop_repacked(&mut self) {
        self.weights.drop_repacked();
    }

    /// The kernels in use.
    pub fn kernels(&self) -> &'static Kernels {
        self.kernels
    }

    /// Bytes of weights one decode step reads (every matrix once, the output projection once).
    pub fn weight_bytes_per_token(&self) -> u64 {
        let w = &self.weights;
        let mut total = w.output.len as u64 + (w.token_embd.len / w.token_embd.rows.max(1)) as u64;
        for l in &w.layers {
            for m in [&l.wq, &l.wk, &l.wv, &l.wqkv, &l.wo, &l.gate, &l.up, &l.down]
                .into_iter()
                .flatten()
            {
                total += m.len as u64;
            }
            if let Some(s) = &l.ssm {
                total += (s.in_proj.len + s.out_proj.len) as u64;
            }
        }
        total
    }
}

//! Serving many sequences at once: the scheduler (what runs each step) and the KV manager
//! (whether a sequence can get blocks, prefix sharing). Neither touches tensors; the
//! [`Engine`](crate::Engine) runs the planned batches through the model.

pub mod kv_manager;
pub mod scheduler;

pub use kv_manager::{Donor, KvManager, KvSpace};
pub use scheduler::{Scheduled, Scheduler, SchedulerConfig, SchedulerStats, StepPlan};

#[cfg(test)]
mod tests;

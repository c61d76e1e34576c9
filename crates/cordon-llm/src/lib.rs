//! cordon-llm: model providers, reached only through `cordon_core::LlmProvider`.
//!
//! [`offline::OfflineModel`] is the built-in deterministic model that lets the
//! golden path run with no network and no API key.

pub mod offline;

pub use offline::OfflineModel;

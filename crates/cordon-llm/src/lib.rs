//! cordon-llm: model providers, reached only through `cordon_core::LlmProvider`.
//!
//! [`offline::OfflineModel`] is the built-in deterministic model that lets the
//! golden path run with no network and no API key. [`openai::OpenAiProvider`]
//! (OpenAI-compatible chat completions) and [`anthropic::AnthropicProvider`]
//! (Anthropic Messages) stream answers over SSE, call tools, retry with backoff
//! where that is safe, bound what a reply may accumulate ([`limits`]) and report token usage, priced by [`pricing::PriceTable`]. [`config::LlmConfig`]
//! selects and builds one from TOML and CLI flags.

pub mod anthropic;
pub mod config;
pub mod http;
pub mod limits;
pub mod offline;
pub mod openai;
pub mod pricing;
pub mod retry;
pub mod sse;
pub mod tool_names;

pub use anthropic::{AnthropicOptions, AnthropicProvider};
pub use config::{ConfigError, LlmConfig, ProviderKind};
pub use http::{ApiKey, HttpSettings};
pub use offline::OfflineModel;
pub use openai::{OpenAiOptions, OpenAiProvider};
pub use pricing::{ModelPrice, PriceTable};
pub use retry::RetryPolicy;

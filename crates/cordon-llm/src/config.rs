//! `LlmConfig`: which model provider cordon uses and how, from a TOML file and/or CLI flags.
//!
//! Every field is optional; docs/llm.md documents each one with its default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cordon_core::LlmProvider;
use reqwest::Url;
use serde::Deserialize;
use url::Host;

use crate::anthropic::{AnthropicOptions, AnthropicProvider, DEFAULT_VERSION};
use crate::http::{ApiKey, HttpSettings};
use crate::openai::{OpenAiOptions, OpenAiProvider};
use crate::pricing::{ModelPrice, PriceTable};
use crate::retry::RetryPolicy;

/// Which provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum ProviderKind {
    /// The built-in deterministic model: no network, no key.
    #[default]
    Offline,
    /// OpenAI-compatible chat completions (OpenAI, vLLM, llama.cpp, Ollama, ...).
    Openai,
    /// Anthropic Messages API.
    Anthropic,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn default_model(self) -> &'static str {
        match self {
            ProviderKind::Offline => "offline",
            ProviderKind::Openai => "gpt-4o-mini",
            ProviderKind::Anthropic => "claude-3-5-haiku-latest",
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::Offline => "",
            ProviderKind::Openai => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com",
        }
    }

    pub fn default_api_key_env(self) -> &'static str {
        match self {
            ProviderKind::Offline => "",
            ProviderKind::Openai => "OPENAI_API_KEY",
            ProviderKind::Anthropic => "ANTHROPIC_API_KEY",
        }
    }
}

/// The `[llm]` settings. CLI flags override the file's values field by field.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// `offline` (default), `openai` or `anthropic`.
    pub provider: Option<ProviderKind>,
    /// Model name sent to the provider.
    pub model: Option<String>,
    /// Endpoint root: `.../v1` for OpenAI-compatible servers, the host for Anthropic.
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key (never the key itself).
    pub api_key_env: Option<String>,
    /// Most tokens one model call may write.
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    /// Seconds to wait for response headers, and between two chunks of a stream.
    pub timeout_secs: Option<f64>,
    /// Retries of a call that failed with 429, 5xx, a timeout or a connection error.
    pub max_retries: Option<u32>,
    /// Backoff before the first retry, in milliseconds; doubles per retry, with jitter.
    pub initial_backoff_ms: Option<u64>,
    /// Upper bound of one backoff, in milliseconds.
    pub max_backoff_ms: Option<u64>,
    /// A `Retry-After` longer than this many seconds fails the call at once.
    pub max_retry_after_secs: Option<f64>,
    /// Model/tool rounds the assistant may take before `step_limit`.
    pub max_steps: Option<u32>,
    /// OpenAI-compatible only: request a usage chunk (`stream_options.include_usage`).
    pub stream_usage: Option<bool>,
    /// Anthropic only: the `anthropic-version` header.
    pub anthropic_version: Option<String>,
    /// Send the API key over plain `http://` to a host that is not loopback
    /// (default false: such a config is refused at start-up).
    pub allow_insecure_http: Option<bool>,
    /// Prices per model, USD per million tokens; added to (and overriding) the built-in table.
    #[serde(default)]
    pub prices: BTreeMap<String, ModelPrice>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read the LLM config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid LLM config: {0}")]
    Parse(String),
    #[error(
        "the {provider} provider needs an API key: set the environment variable {env_var} \
         (or name another one with --llm-api-key-env)"
    )]
    MissingApiKey {
        provider: &'static str,
        env_var: String,
    },
    #[error("invalid LLM config: {0}")]
    Invalid(String),
    #[error(
        "refusing to send the API key over plain http to {host}: use https, or set \
         allow_insecure_http = true (--llm-allow-insecure-http) if the network is trusted"
    )]
    InsecureKey { host: String },
}

impl LlmConfig {
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|error| ConfigError::Parse(error.to_string()))
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text)
    }

    pub fn provider_kind(&self) -> ProviderKind {
        self.provider.unwrap_or_default()
    }

    pub fn model_name(&self) -> String {
        self.model
            .clone()
            .unwrap_or_else(|| self.provider_kind().default_model().to_owned())
    }

    pub fn api_key_env_name(&self) -> String {
        self.api_key_env
            .clone()
            .unwrap_or_else(|| self.provider_kind().default_api_key_env().to_owned())
    }

    pub fn retry_policy(&self) -> Result<RetryPolicy, ConfigError> {
        let defaults = RetryPolicy::default();
        Ok(RetryPolicy {
            max_retries: self.max_retries.unwrap_or(defaults.max_retries),
            initial_backoff: self
                .initial_backoff_ms
                .map_or(defaults.initial_backoff, Duration::from_millis),
            max_backoff: self
                .max_backoff_ms
                .map_or(defaults.max_backoff, Duration::from_millis),
            max_retry_after: match self.max_retry_after_secs {
                Some(secs) => seconds("max_retry_after_secs", secs)?,
                None => defaults.max_retry_after,
            },
        })
    }

    pub fn timeout(&self) -> Result<Duration, ConfigError> {
        seconds("timeout_secs", self.timeout_secs.unwrap_or(60.0))
    }

    /// The price table: built-in list prices plus the configured ones.
    pub fn price_table(&self) -> PriceTable {
        let mut table = PriceTable::builtin();
        table.extend(self.prices.clone());
        table
    }

    /// Builds the configured real provider, reading its key through `env`;
    /// `None` for the offline model (the server builds that itself).
    pub fn build(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Arc<dyn LlmProvider>>, ConfigError> {
        let kind = self.provider_kind();
        if kind == ProviderKind::Offline {
            return Ok(None);
        }
        if self.max_steps == Some(0) {
            return Err(ConfigError::Invalid("max_steps must be at least 1".into()));
        }
        let base_url = self
            .base_url
            .clone()
            .unwrap_or_else(|| kind.default_base_url().to_owned());
        let url = Url::parse(&base_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "base_url must be an http:// or https:// URL, got `{base_url}`"
                ))
            })?;
        let key = self.api_key(kind, &url, env)?;
        let http = HttpSettings::new(key, self.retry_policy()?, self.timeout()?);
        let model = self.model_name();
        let price = self.price_table().lookup(&model);
        let provider: Arc<dyn LlmProvider> = match kind {
            ProviderKind::Openai => Arc::new(OpenAiProvider::new(
                http,
                OpenAiOptions {
                    base_url,
                    model,
                    max_tokens: self.max_tokens,
                    temperature: self.temperature,
                    stream_usage: self.stream_usage.unwrap_or(true),
                    price,
                },
            )),
            ProviderKind::Anthropic => Arc::new(AnthropicProvider::new(
                http,
                AnthropicOptions {
                    base_url,
                    model,
                    max_tokens: self.max_tokens.unwrap_or(1024),
                    temperature: self.temperature,
                    version: self
                        .anthropic_version
                        .clone()
                        .unwrap_or_else(|| DEFAULT_VERSION.to_owned()),
                    price,
                },
            )),
            ProviderKind::Offline => return Ok(None),
        };
        Ok(Some(provider))
    }
}

impl LlmConfig {
    /// The key from the configured environment variable, refused where it would
    /// travel in clear text to another machine.
    fn api_key(
        &self,
        kind: ProviderKind,
        url: &Url,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ApiKey, ConfigError> {
        let env_var = self.api_key_env_name();
        let key = match env(&env_var).filter(|key| !key.trim().is_empty()) {
            Some(key) => ApiKey::new(key.trim()),
            // Local OpenAI-compatible servers (Ollama, llama.cpp) take no key.
            None if kind == ProviderKind::Openai && is_loopback(url) => {
                return Ok(ApiKey::default());
            }
            None => {
                return Err(ConfigError::MissingApiKey {
                    provider: kind.as_str(),
                    env_var,
                });
            }
        };
        let clear_text = url.scheme() == "http" && !is_loopback(url);
        if clear_text && !self.allow_insecure_http.unwrap_or(false) {
            return Err(ConfigError::InsecureKey {
                host: url.host_str().unwrap_or_default().to_owned(),
            });
        }
        Ok(key)
    }
}

fn seconds(field: &str, value: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| ConfigError::Invalid(format!("{field} must be a positive number")))
}

/// Whether `url` names this machine: `localhost` or a loopback address.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests panic on a broken assumption")]
    use super::*;

    #[test]
    fn every_documented_field_parses() {
        let config = LlmConfig::from_toml(
            r#"
            provider = "anthropic"
            model = "claude-sonnet-4-20250514"
            base_url = "https://api.anthropic.com"
            api_key_env = "MY_KEY"
            max_tokens = 2048
            temperature = 0.2
            timeout_secs = 30
            max_retries = 5
            initial_backoff_ms = 250
            max_backoff_ms = 4000
            max_retry_after_secs = 20
            max_steps = 6
            stream_usage = true
            anthropic_version = "2023-06-01"
            [prices."claude-sonnet-4"]
            input_per_mtok = 3.0
            output_per_mtok = 15.0
            "#,
        )
        .unwrap();
        assert_eq!(config.provider_kind(), ProviderKind::Anthropic);
        assert_eq!(config.retry_policy().unwrap().max_retries, 5);
        assert_eq!(config.timeout().unwrap(), Duration::from_secs(30));
        assert_eq!(
            config.price_table().lookup("claude-sonnet-4-20250514"),
            Some(ModelPrice {
                input_per_mtok: 3.0,
                output_per_mtok: 15.0
            })
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let error = LlmConfig::from_toml("modle = \"x\"").unwrap_err();
        assert!(error.to_string().contains("modle"), "{error}");
    }

    #[test]
    fn a_missing_key_names_the_variable_never_a_value() {
        let config = LlmConfig {
            provider: Some(ProviderKind::Openai),
            ..LlmConfig::default()
        };
        let error = config.build(|_| None).err().unwrap();
        assert!(error.to_string().contains("OPENAI_API_KEY"), "{error}");
        let anthropic = LlmConfig {
            provider: Some(ProviderKind::Anthropic),
            api_key_env: Some("CUSTOM_VAR".into()),
            ..LlmConfig::default()
        };
        let error = anthropic.build(|_| None).err().unwrap();
        assert!(error.to_string().contains("CUSTOM_VAR"), "{error}");
    }

    #[test]
    fn local_openai_compatible_servers_need_no_key() {
        let config = LlmConfig {
            provider: Some(ProviderKind::Openai),
            base_url: Some("http://127.0.0.1:11434/v1".into()),
            model: Some("llama3.2".into()),
            ..LlmConfig::default()
        };
        let provider = config.build(|_| None).unwrap().unwrap();
        assert_eq!(provider.model(), "llama3.2");
        let url = |text: &str| Url::parse(text).unwrap();
        assert!(is_loopback(&url("http://localhost:8080/v1")));
        assert!(is_loopback(&url("http://127.0.0.2:8080/v1")));
        assert!(is_loopback(&url("http://[::1]:8080/v1")));
        assert!(!is_loopback(&url("https://api.openai.com/v1")));
        assert!(!is_loopback(&url("http://localhost.evil.com/v1")));
        assert!(LlmConfig::default().build(|_| None).unwrap().is_none());
    }

    #[test]
    fn a_key_never_travels_in_clear_text_to_another_machine_unless_allowed() {
        let mut config = LlmConfig {
            provider: Some(ProviderKind::Openai),
            base_url: Some("http://10.0.0.5:8000/v1".into()),
            ..LlmConfig::default()
        };
        let key = |_: &str| Some("sk-real-key".to_owned());
        let error = config.build(key).err().unwrap();
        assert!(matches!(&error, ConfigError::InsecureKey { host } if host == "10.0.0.5"));
        assert!(!error.to_string().contains("sk-real-key"));
        config.base_url = Some("http://127.0.0.1:8000/v1".into());
        assert!(config.build(key).is_ok(), "loopback is not the network");
        config.base_url = Some("https://10.0.0.5/v1".into());
        assert!(config.build(key).is_ok());
        config.base_url = Some("http://10.0.0.5:8000/v1".into());
        config.allow_insecure_http = Some(true);
        assert!(
            config.build(key).is_ok(),
            "the operator said the network is trusted"
        );
        config.base_url = Some("ftp://10.0.0.5/".into());
        assert!(matches!(config.build(key), Err(ConfigError::Invalid(_))));
    }
}

//! `cordon serve`: build the config from arguments, bind, serve until SIGTERM or ctrl-c.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cordon_core::{BudgetLimits, LlmProvider};
use cordon_engine::EngineConfig;
use cordon_llm::{LlmConfig, ProviderKind};
use cordon_server::{Server, ServerConfig};
use tokio::net::TcpListener;

use cordon_engine::trace::{TARGET, TraceOptions};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Directive;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::cli::{LlmChoice, LogFormat, OtlpUserIds, ServeArgs};
use crate::otel::{self, OtlpSettings};

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let exporter = install_tracing(args.log_format, otlp_settings(&args).as_ref())?;
    let addr = listen_addr(&args);
    let (llm, max_steps) = llm_from(&args)?;
    let file = match &args.config {
        Some(path) => crate::config_file::ConfigFile::load(path)?,
        None => crate::config_file::ConfigFile::default(),
    };
    let approval_tools = file.approval_tools();
    let mcp_servers = file.mcp_servers()?;
    let mut config = config_from(args)?;
    config.mcp_servers = mcp_servers;
    config.engine.approval_tools = approval_tools;
    if let Some(max_steps) = max_steps {
        config.engine.max_steps = max_steps;
    }
    let runtime = tokio::runtime::Runtime::new().context("could not start the async runtime")?;
    let served = runtime.block_on(async move {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not listen on {addr}"))?;
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "listening");
        let server = match llm {
            Some(llm) => Server::new(config).with_llm(llm),
            None => Server::new(config),
        };
        server.run(listener, shutdown_signal()).await?;
        Ok(())
    });
    // Outside the runtime: the exporter's blocking client flushes what is queued.
    drop(runtime);
    if let Some(exporter) = exporter {
        exporter.shutdown();
    }
    served
}

/// `--otlp-*`: the exporter's settings, or `None` without an endpoint.
fn otlp_settings(args: &ServeArgs) -> Option<OtlpSettings> {
    let endpoint = args.otlp_endpoint.clone().filter(|url| !url.is_empty())?;
    Some(OtlpSettings {
        endpoint,
        queue_size: usize::try_from(args.otlp_queue_size).unwrap_or(usize::MAX),
        options: TraceOptions {
            plain_user_ids: args.otlp_user_ids == OtlpUserIds::Plain,
            content: args.otlp_content,
        },
    })
}

fn listen_addr(args: &ServeArgs) -> SocketAddr {
    match (args.addr, args.port) {
        (Some(addr), _) => addr,
        (None, Some(port)) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        (None, None) => SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
    }
}

fn config_from(args: ServeArgs) -> anyhow::Result<ServerConfig> {
    if args.max_runs_per_user == 0 || args.max_runs_global == 0 {
        bail!("--max-runs-per-user and --max-runs-global must be at least 1");
    }
    if args.max_sockets_per_user == 0 || args.messages_per_minute == 0 {
        bail!("--max-sockets-per-user and --messages-per-minute must be at least 1");
    }
    let budget = budget_from(&args)?;
    let clickhouse = args.clickhouse_url.map(|mut clickhouse| {
        clickhouse.buffer_rows = args.analytics_buffer_rows.max(1);
        clickhouse
    });
    let mut config = ServerConfig::new(args.data_dir);
    config.database_url = args.database_url;
    config.broker_url = args.broker_url;
    if args.jwt_secret.is_some() && std::env::var_os("CORDON_JWT_SECRET").is_none() {
        tracing::warn!(
            "--jwt-secret on the command line is visible to every user of this machine (ps); \
             set CORDON_JWT_SECRET instead, or let cordon keep one in the data dir"
        );
    }
    config.jwt_secret = args.jwt_secret;
    config.secrets_key = args.secrets_key;
    config.heartbeat_interval = seconds("--heartbeat-interval", args.heartbeat_interval)?;
    config.idle_timeout = seconds("--idle-timeout", args.idle_timeout)?;
    config.shutdown_grace = seconds("--shutdown-grace", args.shutdown_grace)?;
    config.event_retention = seconds("--event-retention", args.event_retention * 86_400.0)?;
    config.offline_step_delay = Duration::from_millis(args.offline_delay_ms);
    config.write_queue_capacity = args.write_queue_capacity;
    config.search_budget = Duration::from_millis(args.search_budget_ms);
    config.trusted_proxies = args.trusted_proxies;
    config.max_sockets_per_user = args.max_sockets_per_user;
    config.write_timeout = seconds("--write-timeout", args.write_timeout)?;
    config.header_timeout = seconds("--header-timeout", args.header_timeout)?;
    config.body_timeout = seconds("--body-timeout", args.body_timeout)?;
    config.signups_per_hour = args.signups_per_hour.max(1);
    config.quiet_signup = args.quiet_signup;
    config.max_pending_hashes = args.max_pending_hashes.max(1);
    config.allowed_origins = args.allowed_origins;
    config.clickhouse = clickhouse;
    config.engine = EngineConfig {
        max_runs_per_user: args.max_runs_per_user,
        max_runs_global: args.max_runs_global,
        agent_timeout: seconds("--agent-timeout", args.agent_timeout)?,
        engine_idle_ttl: seconds("--engine-idle-ttl", args.engine_idle_ttl)?,
        messages_per_minute: args.messages_per_minute,
        approval_ttl: seconds("--approval-ttl", args.approval_ttl)?,
        budget,
        ..EngineConfig::default()
    };
    Ok(config)
}

/// The default budget from the `--budget-*` flags.
fn budget_from(args: &ServeArgs) -> anyhow::Result<BudgetLimits> {
    for (flag, usd) in [
        ("--budget-daily-usd", args.budget_daily_usd),
        ("--budget-monthly-usd", args.budget_monthly_usd),
    ] {
        if usd.is_some_and(|usd| !usd.is_finite() || usd < 0.0) {
            bail!("{flag} must be a finite number of at least 0");
        }
    }
    Ok(BudgetLimits {
        daily_usd: args.budget_daily_usd,
        monthly_usd: args.budget_monthly_usd,
        daily_tokens: args.budget_daily_tokens,
        monthly_tokens: args.budget_monthly_tokens,
    })
}

/// The provider to use instead of the offline model, and the configured step limit.
type LlmSetup = (Option<Arc<dyn LlmProvider>>, Option<u32>);

/// The model provider from `--llm-config` and the `--llm*` flags (flags win);
/// `None` keeps the built-in offline model. A real provider without its API
/// key is a start-up error naming the variable, never its value.
fn llm_from(args: &ServeArgs) -> anyhow::Result<LlmSetup> {
    let mut llm = match &args.llm_config {
        Some(path) => LlmConfig::load(path)?,
        None => LlmConfig::default(),
    };
    if let Some(choice) = args.llm {
        llm.provider = Some(match choice {
            LlmChoice::Offline => ProviderKind::Offline,
            LlmChoice::Openai => ProviderKind::Openai,
            LlmChoice::Anthropic => ProviderKind::Anthropic,
        });
    }
    llm.model = args.llm_model.clone().or(llm.model);
    llm.base_url = args.llm_base_url.clone().or(llm.base_url);
    llm.api_key_env = args.llm_api_key_env.clone().or(llm.api_key_env);
    if args.llm_allow_insecure_http {
        llm.allow_insecure_http = Some(true);
    }
    let provider = llm.build(|name| std::env::var(name).ok())?;
    if let Some(provider) = &provider {
        tracing::info!(
            provider = provider.name(),
            model = provider.model(),
            "using a real model provider"
        );
    }
    Ok((provider, llm.max_steps))
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} must be a positive number of seconds"))
}

/// Logs to stdout; with an OTLP endpoint, also the run spans to the
/// exporter. Without one no OpenTelemetry layer exists, so the run spans'
/// callsites stay disabled and cost nothing.
fn install_tracing(
    format: LogFormat,
    otlp: Option<&OtlpSettings>,
) -> anyhow::Result<Option<otel::Exporter>> {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // rmcp logs every MCP handshake's full server description at info.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=warn"));
    // The run spans are for the exporter, not the log lines.
    if let Ok(off) = format!("{TARGET}=off").parse::<Directive>() {
        filter = filter.add_directive(off);
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let Some(settings) = otlp else {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi);
        match format {
            LogFormat::Text => builder.init(),
            LogFormat::Json => builder.json().init(),
        }
        return Ok(None);
    };
    let (exporter, spans) = otel::Exporter::start(settings)?;
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_ansi(ansi).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_ansi(ansi)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(spans.layer())
        .init();
    tracing::info!(endpoint = %otel::redacted(&settings.endpoint), "exporting traces");
    Ok(Some(exporter))
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn the_limit_flags_reach_the_config() {
        let args = Wrapper::parse_from([
            "serve",
            "--messages-per-minute",
            "7",
            "--max-sockets-per-user",
            "3",
            "--trusted-proxy",
            "10.0.0.0/8,192.0.2.1",
            "--write-queue-capacity",
            "100",
            "--search-budget-ms",
            "20",
        ])
        .serve;
        let config = config_from(args).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(config.engine.messages_per_minute, 7);
        assert_eq!(config.max_sockets_per_user, 3);
        assert_eq!(config.write_queue_capacity, 100);
        assert_eq!(config.search_budget, Duration::from_millis(20));
        let proxies: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.0.2.1/32"]);
    }
}

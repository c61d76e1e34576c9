//! `cordon serve`: build the config from arguments, bind, serve until SIGTERM or ctrl-c.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, bail};
use cordon_engine::EngineConfig;
use cordon_server::{Server, ServerConfig};
use tokio::net::TcpListener;

use crate::cli::{LogFormat, ServeArgs};

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    install_tracing(args.log_format);
    let addr = listen_addr(&args);
    let config = config_from(args)?;
    let runtime = tokio::runtime::Runtime::new().context("could not start the async runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not listen on {addr}"))?;
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "listening");
        Server::new(config).run(listener, shutdown_signal()).await?;
        Ok(())
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
    let mut config = ServerConfig::new(args.data_dir);
    config.jwt_secret = args.jwt_secret;
    config.heartbeat_interval = seconds("--heartbeat-interval", args.heartbeat_interval)?;
    config.idle_timeout = seconds("--idle-timeout", args.idle_timeout)?;
    config.shutdown_grace = seconds("--shutdown-grace", args.shutdown_grace)?;
    config.offline_step_delay = Duration::from_millis(args.offline_delay_ms);
    config.allowed_origins = args.allowed_origins;
    config.engine = EngineConfig {
        max_runs_per_user: args.max_runs_per_user,
        max_runs_global: args.max_runs_global,
        agent_timeout: seconds("--agent-timeout", args.agent_timeout)?,
        engine_idle_ttl: seconds("--engine-idle-ttl", args.engine_idle_ttl)?,
        ..EngineConfig::default()
    };
    Ok(config)
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{flag} must be a positive number of seconds"))
}

fn install_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
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

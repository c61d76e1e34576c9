//! `cordon healthcheck`: one GET of a running server's `/healthz`, for container health checks.

use std::time::Duration;

use crate::cli::HealthcheckArgs;

/// 0 when the server answered 200, 1 otherwise (with the reason on stderr).
pub fn run(args: &HealthcheckArgs) -> i32 {
    let url = args.url.clone().unwrap_or_else(default_url);
    match check(&url, Duration::from_secs_f64(args.timeout.max(0.1))) {
        Ok(()) => 0,
        Err(why) => {
            eprintln!("cordon healthcheck: {url}: {why}");
            1
        }
    }
}

fn check(url: &str, timeout: Duration) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|error| error.to_string())?;
        let response = client
            .get(url)
            .send()
            .await
            .map_err(|error| error.to_string())?;
        if response.status() == reqwest::StatusCode::OK {
            return Ok(());
        }
        Err(format!("answered {}", response.status()))
    })
}

/// Where `serve` listens by the same environment: the port of
/// `CORDON_ADDR`, else `PORT`, else 8080, asked on loopback.
fn default_url() -> String {
    let from_addr = std::env::var("CORDON_ADDR")
        .ok()
        .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
        .map(|addr| addr.port());
    let from_port = std::env::var("PORT")
        .ok()
        .and_then(|port| port.parse::<u16>().ok());
    let port = from_addr.or(from_port).unwrap_or(8080);
    format!("http://127.0.0.1:{port}/healthz")
}

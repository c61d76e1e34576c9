//! Measures the two candidate brokers between instances side by side: NATS publish/subscribe and PostgreSQL `NOTIFY`/`LISTEN`.
//!
//! `benches/broker.sh` starts both servers and runs this. For each broker it
//! sends 2,000 event-sized messages (400 bytes) 1 ms apart and prints the
//! one-way latency (p50, p99), then a burst of 20,000 and prints how many per
//! second arrived. Environment: `CORDON_BENCH_DATABASE_URL`, `CORDON_BENCH_NATS_URL`.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgListener};

const PACED: usize = 2_000;
const BURST: usize = 20_000;
const PAYLOAD: usize = 400;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database = std::env::var("CORDON_BENCH_DATABASE_URL")?;
    let nats = std::env::var("CORDON_BENCH_NATS_URL")?;
    let origin = Instant::now();
    println!("broker             p50 (µs)  p99 (µs)  burst (msg/s)");
    for round in 1..=3 {
        let figures = nats_round(&nats, origin).await?;
        report(&format!("NATS #{round}"), figures);
        let figures = notify_round(&database, origin).await?;
        report(&format!("LISTEN/NOTIFY #{round}"), figures);
    }
    Ok(())
}

/// Latencies of the paced messages (µs) and the burst's rate.
struct Figures {
    latencies: Vec<u64>,
    burst_per_second: f64,
}

fn report(name: &str, mut figures: Figures) {
    figures.latencies.sort_unstable();
    let at = |q: f64| figures.latencies[((figures.latencies.len() - 1) as f64 * q) as usize];
    println!(
        "{name:<18} {:>8}  {:>8}  {:>13.0}",
        at(0.5),
        at(0.99),
        figures.burst_per_second
    );
}

/// A message: the send time in µs since `origin`, padded to `PAYLOAD` bytes.
fn message(origin: Instant) -> String {
    let sent = origin.elapsed().as_micros();
    format!("{sent:<width$}", width = PAYLOAD)
}

fn latency(origin: Instant, message: &str) -> u64 {
    let sent: u128 = message.trim_end().parse().unwrap_or(0);
    u64::try_from(origin.elapsed().as_micros().saturating_sub(sent)).unwrap_or(u64::MAX)
}

async fn nats_round(url: &str, origin: Instant) -> Result<Figures, Box<dyn std::error::Error>> {
    let (publisher, subscriber) = (
        async_nats::connect(url).await?,
        async_nats::connect(url).await?,
    );
    let mut messages = subscriber.subscribe("bench.events").await?;
    subscriber.flush().await?;
    let receive = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(PACED);
        while latencies.len() < PACED {
            let Some(received) = messages.next().await else {
                break;
            };
            latencies.push(latency(
                origin,
                std::str::from_utf8(&received.payload).unwrap_or(""),
            ));
        }
        let started = Instant::now();
        for _ in 0..BURST {
            if messages.next().await.is_none() {
                break;
            }
        }
        (latencies, started.elapsed())
    });
    for _ in 0..PACED {
        publisher
            .publish("bench.events", message(origin).into())
            .await?;
        publisher.flush().await?;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for _ in 0..BURST {
        publisher
            .publish("bench.events", message(origin).into())
            .await?;
    }
    publisher.flush().await?;
    let (latencies, burst) = receive.await?;
    Ok(Figures {
        latencies,
        burst_per_second: BURST as f64 / burst.as_secs_f64(),
    })
}

async fn notify_round(url: &str, origin: Instant) -> Result<Figures, Box<dyn std::error::Error>> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen("bench_events").await?;
    let mut publisher = PgConnection::connect(url).await?;
    let receive = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(PACED);
        while latencies.len() < PACED {
            let Ok(received) = listener.recv().await else {
                break;
            };
            latencies.push(latency(origin, received.payload()));
        }
        let started = Instant::now();
        for _ in 0..BURST {
            if listener.recv().await.is_err() {
                break;
            }
        }
        (latencies, started.elapsed())
    });
    for _ in 0..PACED {
        notify(&mut publisher, &message(origin)).await?;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for _ in 0..BURST {
        notify(&mut publisher, &message(origin)).await?;
    }
    let (latencies, burst) = receive.await?;
    Ok(Figures {
        latencies,
        burst_per_second: BURST as f64 / burst.as_secs_f64(),
    })
}

/// One `NOTIFY` in a transaction of its own, as a committed event would be.
async fn notify(publisher: &mut PgConnection, payload: &str) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify('bench_events', $1)")
        .bind(payload)
        .execute(publisher)
        .await
        .map(drop)
}

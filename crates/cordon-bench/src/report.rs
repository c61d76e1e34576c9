//! The bench report: a table for people, JSON for machines.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::abuse::{AbuseReport, NoisyCounts};
use crate::reconnect::ReconnectReport;
use crate::stats::Percentiles;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    pub before_bytes: Option<u64>,
    pub connected_bytes: Option<u64>,
    pub after_bytes: Option<u64>,
    /// (connected − before) / connections: what one idle connection costs the server.
    pub per_idle_connection_bytes: Option<u64>,
    /// (seconds into the send phase, RSS bytes), every 5 s, for --duration runs.
    pub samples: Vec<(f64, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub users: usize,
    pub connections_per_user: usize,
    pub connections_established: usize,
    pub connections_failed: usize,
    pub runs_completed: usize,
    pub runs_failed: usize,
    pub runs_failed_by_code: BTreeMap<String, usize>,
    /// Always 0 in a finished report: a cross-user event aborts the run instead.
    pub cross_user_events: u64,
    pub time_to_agent_started: Percentiles,
    pub time_to_agent_completed: Percentiles,
    pub run_events_received: u64,
    pub events_per_second: f64,
    pub runs_per_second: f64,
    pub send_phase_seconds: f64,
    pub server_memory: Memory,
    /// Only with `--reconnect-every`.
    pub reconnect: Option<ReconnectReport>,
    /// Only with `--abuse`.
    pub abuse: Option<AbuseReport>,
}

impl BenchReport {
    /// No failed connection or run, and (by construction) no cross-user event.
    pub fn passed(&self) -> bool {
        self.connections_failed == 0
            && self.runs_failed == 0
            && self.cross_user_events == 0
            && self.reconnect.as_ref().is_none_or(ReconnectReport::passed)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_table(&self) -> String {
        let mut out = String::new();
        self.write_runs(&mut out);
        self.write_reconnects(&mut out);
        self.write_abuse(&mut out);
        self.write_memory(&mut out);
        out
    }

    fn write_runs(&self, out: &mut String) {
        row(
            out,
            "users × connections",
            format!("{} × {}", self.users, self.connections_per_user),
        );
        row(
            out,
            "connections established / failed",
            format!(
                "{} / {}",
                self.connections_established, self.connections_failed
            ),
        );
        row(
            out,
            "runs completed / failed",
            format!("{} / {}", self.runs_completed, self.runs_failed),
        );
        for (code, n) in &self.runs_failed_by_code {
            row(out, &format!("  failed: {code}"), n.to_string());
        }
        row(out, "cross-user events", self.cross_user_events.to_string());
        for (name, p) in [
            ("to agent_started", &self.time_to_agent_started),
            ("to agent_completed", &self.time_to_agent_completed),
        ] {
            percentile_row(out, name, p);
        }
        row(
            out,
            "run events received",
            format!(
                "{} ({:.0}/s)",
                self.run_events_received, self.events_per_second
            ),
        );
        row(
            out,
            "runs per second",
            format!(
                "{:.0} over {:.1} s",
                self.runs_per_second, self.send_phase_seconds
            ),
        );
    }

    fn write_reconnects(&self, out: &mut String) {
        let Some(r) = &self.reconnect else {
            return;
        };
        row(
            out,
            "reconnects (every N events)",
            format!("{} (N = {})", r.reconnects, r.reconnect_every),
        );
        row(
            out,
            "gaps / duplicates / log mismatches",
            format!("{} / {} / {}", r.gaps, r.duplicates, r.log_mismatches),
        );
        percentile_row(out, "reconnect to 1st event", &r.reconnect_to_first_event);
    }

    fn write_abuse(&self, out: &mut String) {
        let Some(a) = &self.abuse else {
            return;
        };
        row(
            out,
            "abuse: phase / pace",
            format!(
                "{:.0} s each / one message per {:.1} s per user",
                a.phase_seconds, a.pace_seconds
            ),
        );
        row(
            out,
            "p50 / p99 (ms)",
            "alone           with the noisy tenant   p99 change".into(),
        );
        let (alone, noisy, change) = (&a.alone, &a.with_noisy, &a.p99_change);
        for (name, before, after, change) in [
            (
                "  to agent_started",
                &alone.to_agent_started,
                &noisy.to_agent_started,
                change.to_agent_started,
            ),
            (
                "  to agent_completed",
                &alone.to_agent_completed,
                &noisy.to_agent_completed,
                change.to_agent_completed,
            ),
            (
                "  GET /api/threads",
                &alone.rest_threads,
                &noisy.rest_threads,
                change.rest_threads,
            ),
            ("  sign-in", &alone.sign_in, &noisy.sign_in, change.sign_in),
        ] {
            row(
                out,
                name,
                format!(
                    "{:>6.1} / {:<6.1}  {:>6.1} / {:<6.1}          {:+.0} %",
                    before.p50_ms,
                    before.p99_ms,
                    after.p50_ms,
                    after.p99_ms,
                    change * 100.0
                ),
            );
        }
        row(
            out,
            "  runs completed / failed",
            format!(
                "{} / {}           {} / {}",
                alone.runs_completed, alone.runs_failed, noisy.runs_completed, noisy.runs_failed
            ),
        );
        row(
            out,
            "target: every p99 within +20 %",
            if a.target_met() { "met" } else { "missed" }.into(),
        );
        write_noisy(out, &a.noisy_tenant);
    }

    fn write_memory(&self, out: &mut String) {
        let m = &self.server_memory;
        row(
            out,
            "server RSS before / connected / after",
            format!(
                "{} / {} / {}",
                mib(m.before_bytes),
                mib(m.connected_bytes),
                mib(m.after_bytes)
            ),
        );
        for (at, rss) in &m.samples {
            row(out, &format!("  RSS at {at:>4.0} s"), mib(Some(*rss)));
        }
        row(
            out,
            "server RSS per idle connection",
            m.per_idle_connection_bytes
                .map_or("n/a".into(), |b| format!("{:.1} KiB", b as f64 / 1024.0)),
        );
    }
}

/// What the noisy tenant of `--abuse` tried, and what the limits let through.
fn write_noisy(out: &mut String, n: &NoisyCounts) {
    row(
        out,
        "noisy: sockets opened / refused",
        format!("{} / {}", n.sockets_opened, n.sockets_refused),
    );
    row(
        out,
        "noisy: messages sent / runs admitted",
        format!("{} / {}", n.messages_sent, n.runs_admitted),
    );
    row(
        out,
        "noisy: rate_limited / other refusals",
        format!("{} / {}", n.rate_limited, n.other_refusals),
    );
    row(
        out,
        "noisy: sign-ins tried / throttled",
        format!("{} / {}", n.sign_ins_tried, n.sign_ins_throttled),
    );
}

fn percentile_row(out: &mut String, name: &str, p: &Percentiles) {
    row(
        out,
        &format!("{name} p50/p90/p99/max"),
        format!(
            "{:.1} / {:.1} / {:.1} / {:.1} ms",
            p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms
        ),
    );
}

fn row(out: &mut String, key: &str, value: String) {
    let _ = writeln!(out, "{key:<38} {value}");
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("n/a".to_owned(), |b| {
        format!("{:.1} MiB", b as f64 / 1048576.0)
    })
}

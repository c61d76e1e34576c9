//! Reading the server's resident memory: from /proc/<pid>/status, or the /metrics gauge.

/// The `VmRSS:` of a `/proc/<pid>/status` text, in bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The value of an unlabelled gauge or counter in a Prometheus text exposition.
pub fn parse_gauge(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (metric, value) = line.split_once(' ')?;
            (metric == name).then(|| value.trim().parse().ok())?
        })
}

/// The server's resident memory in bytes, if it can be read.
pub async fn server_rss(http: &reqwest::Client, http_base: &str, pid: Option<u32>) -> Option<u64> {
    if let Some(pid) = pid {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        return parse_vm_rss(&status);
    }
    let text = http
        .get(format!("{http_base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    parse_gauge(&text, "cordon_process_resident_memory_bytes").map(|v| v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_from_proc_and_from_metrics() {
        assert_eq!(
            parse_vm_rss("Name:\tcordon\nVmRSS:\t  2048 kB\n"),
            Some(2 * 1024 * 1024)
        );
        let text = "# HELP x\ncordon_process_resident_memory_bytes 1234\nother 5\n";
        assert_eq!(
            parse_gauge(text, "cordon_process_resident_memory_bytes"),
            Some(1234.0)
        );
        assert_eq!(parse_gauge(text, "missing"), None);
    }
}

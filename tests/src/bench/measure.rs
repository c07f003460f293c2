//! What a pass reads off the controller and the system: its metrics (Kubernetes writes, counters by
//! outcome, a histogram's quantile), a process's RSS and CPU time, and percentiles.

use std::collections::BTreeMap;

use anyhow::Context as _;

use crate::{Controller, http_get};

/// The upper bound of the bucket holding the `quantile` of a histogram on the controller's /metrics.
pub(super) async fn histogram_quantile(
    controller: &Controller,
    family: &str,
    quantile: f64,
) -> anyhow::Result<Option<f64>> {
    let (_, page) = http_get(&controller.metrics_url).await?;
    let prefix = format!("{family}_bucket{{le=\"");
    let buckets: Vec<(f64, f64)> = page
        .lines()
        .filter_map(|line| {
            let (le, count) = line.strip_prefix(&prefix)?.split_once("\"}")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, count.trim().parse().ok()?))
        })
        .collect();
    let Some(total) = buckets.last().map(|(_, count)| *count).filter(|total| *total > 0.0) else {
        return Ok(None);
    };
    Ok(buckets.iter().find(|(_, count)| *count >= total * quantile).map(|(le, _)| *le))
}

/// A counter's series by their `outcome` label, from the controller's /metrics.
pub(super) async fn outcomes_of(controller: &Controller, family: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let (_, page) = http_get(&controller.metrics_url).await?;
    let prefix = format!("{family}{{outcome=\"");
    Ok(page
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (outcome, value) = rest.split_once("\"}")?;
            Some((outcome.to_owned(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect())
}

/// Kubernetes writes the controller made, from its own metrics.
pub(super) struct KubeWrites {
    pub total: u64,
    pub status: u64,
}

pub(super) async fn kube_writes(controller: &Controller) -> anyhow::Result<KubeWrites> {
    let (_, page) = http_get(&controller.metrics_url).await?;
    let mut writes = KubeWrites { total: 0, status: 0 };
    for line in page.lines().filter(|line| line.starts_with("ecsrun_kube_requests_total{")) {
        let value: u64 = line.rsplit(' ').next().and_then(|value| value.parse::<f64>().ok()).unwrap_or(0.0) as u64;
        let label = |name: &str| {
            line.split(&format!("{name}=\"")).nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_default()
        };
        if ["POST", "PUT", "PATCH", "APPLY", "DELETE"].contains(&label("verb")) && label("resource") != "leases" {
            writes.total += value;
            if label("resource") == "ecstaskruns/status" {
                writes.status += value;
            }
        }
    }
    Ok(writes)
}

pub(super) fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .context("no VmRSS")?;
    Ok(kib / 1024.0)
}

pub(super) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may contain spaces): utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')').context("malformed stat")?.1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let per_second = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok()?.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    Ok(ticks / per_second)
}

pub fn percentile(values: &[f64], quantile: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let index = ((sorted.len() as f64 * quantile).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

//! A local OCI registry: distribution's own (hack/registry, built by hack/setup from its Go module), on a
//! loopback port over plain HTTP, its storage in the work directory. Stopped when dropped.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};

use crate::{Process, free_port, http_get, setup_binary};

pub struct Registry {
    /// `127.0.0.1:<port>`: what image references and `oci://` URLs start with.
    pub host: String,
    pub process: Process,
}

impl Registry {
    pub async fn start(work: &Path) -> anyhow::Result<Self> {
        let binary = setup_binary("registry")?;
        let dir = work.join("registry");
        std::fs::create_dir_all(&dir)?;
        let host = format!("127.0.0.1:{}", free_port()?);
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
                dir.join("storage").display()
            ),
        )?;
        let mut command = Command::new(binary);
        command.arg("serve").arg(&config).env("OTEL_TRACES_EXPORTER", "none");
        let mut process = Process::spawn("registry", command, dir.join("registry.log"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            process.ensure_alive()?;
            if let Ok((200, _)) = http_get(&format!("http://{host}/v2/")).await {
                return Ok(Self { host, process });
            }
            ensure!(Instant::now() < deadline, "the registry did not answer /v2/ on {host} within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The tags of a repository, as the registry lists them.
    pub async fn tags(&self, repository: &str) -> anyhow::Result<Vec<String>> {
        let (status, body) = http_get(&format!("http://{}/v2/{repository}/tags/list", self.host)).await?;
        ensure!(status == 200, "listing the tags of {repository}: HTTP {status}: {body}");
        let list: serde_json::Value = serde_json::from_str(&body)?;
        let tags = list["tags"].as_array().context("no tags")?;
        Ok(tags.iter().filter_map(|tag| tag.as_str().map(str::to_owned)).collect())
    }
}

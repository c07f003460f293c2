//! The commit the binary is built from (`ECSRUN_COMMIT`, else `git rev-parse`; `unknown` outside a
//! checkout), for `--version`, the start-up log line and `ecsrun_build_info`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ECSRUN_COMMIT");
    println!("cargo:rerun-if-changed=../.git/HEAD");
    println!("cargo:rerun-if-changed=../.git/refs/heads");
    let commit = std::env::var("ECSRUN_COMMIT").ok().filter(|commit| !commit.is_empty()).or_else(|| {
        let output = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    });
    println!("cargo:rustc-env=ECSRUN_COMMIT={}", commit.as_deref().unwrap_or("unknown"));
}

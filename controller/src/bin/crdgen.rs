//! Writes the API's CRDs into each directory given (`crds/`, the chart's `crds/`); a test fails when the
//! committed files differ from what the types generate.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dirs: Vec<String> = std::env::args().skip(1).collect();
    if dirs.is_empty() {
        return Err("usage: crdgen DIR...".into());
    }
    for (file, yaml) in ecsrun::api::crds()? {
        for dir in &dirs {
            std::fs::write(Path::new(dir).join(file), &yaml)?;
        }
    }
    Ok(())
}

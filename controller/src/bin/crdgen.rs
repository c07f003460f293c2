//! Writes the API's CRDs into `crds/` (for `kubectl apply`) and the Helm chart's `templates/crds/`; a test
//! fails when the committed files differ from what the types generate.
//!
//!     crdgen CRDS_DIR CHART_TEMPLATES_DIR

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let [plain, chart] = <[String; 2]>::try_from(std::env::args().skip(1).collect::<Vec<_>>())
        .map_err(|_| "usage: crdgen CRDS_DIR CHART_TEMPLATES_DIR")?;
    for (file, yaml) in ecsrun::api::crds()? {
        std::fs::write(Path::new(&plain).join(file), yaml)?;
    }
    std::fs::create_dir_all(&chart)?;
    for (file, template) in ecsrun::api::chart_crd_templates()? {
        std::fs::write(Path::new(&chart).join(file), template)?;
    }
    Ok(())
}

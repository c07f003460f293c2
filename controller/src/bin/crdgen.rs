//! Prints the EcsTaskRun CRD; `crds/` holds its output (a test fails when they differ).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    print!("{}", ecsrun::crd_yaml()?);
    Ok(())
}

//! EcsTaskSchedule: runs created on a cron schedule. `decide` says what to do (pure); `shell` does it
//! against the API server (create, delete, status, Events); `wiring` puts it under kube-runtime beside
//! the runs' controller.

pub mod decide;
pub mod shell;
pub mod wiring;

//! `schedule trigger|suspend|resume|next`: an EcsTaskSchedule operated from the terminal.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use ecsrun_api::EcsTaskSchedule;
use ecsrun_api::cron::Slots;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};

use crate::output::{Output, print_run};
use crate::runs::Runs;

#[derive(Subcommand)]
pub enum ScheduleCommand {
    /// Create a run of the schedule now, marked manual (it counts as active for the concurrency
    /// policy, and is kept or pruned by the history limits, but moves no slot).
    Trigger {
        schedule: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Stop creating runs (spec.suspend); active runs go on.
    Suspend { schedule: String },
    /// Create runs again; at most the latest missed slot runs, within startingDeadlineSeconds.
    Resume { schedule: String },
    /// The next slots, in the schedule's time zone and in UTC.
    Next {
        schedule: String,
        /// How many.
        #[arg(short = 'c', long, default_value_t = 5)]
        count: usize,
    },
}

pub async fn schedule(runs: &Runs, command: ScheduleCommand) -> anyhow::Result<ExitCode> {
    let api: Api<EcsTaskSchedule> = Api::namespaced(runs.api.clone().into_client(), &runs.namespace);
    match command {
        ScheduleCommand::Trigger { schedule, output } => {
            let schedule = get(&api, &runs.namespace, &schedule).await?;
            let now = jiff::Timestamp::now();
            let name = format!("{}-manual-{}", schedule.name_any(), now.as_second());
            let run = schedule.run(name, now, true);
            let created = runs.create(&run).await?;
            if !print_run(&created, output)? {
                println!("{}", created.name_any());
            }
        }
        ScheduleCommand::Suspend { schedule } => set_suspend(&api, &runs.namespace, &schedule, true).await?,
        ScheduleCommand::Resume { schedule } => set_suspend(&api, &runs.namespace, &schedule, false).await?,
        ScheduleCommand::Next { schedule, count } => {
            let schedule = get(&api, &runs.namespace, &schedule).await?;
            let slots = Slots::new(&schedule.spec.schedule, schedule.spec.time_zone.as_deref())?;
            let zone = schedule.spec.time_zone.as_deref().unwrap_or("UTC");
            if schedule.spec.suspend {
                println!("# suspended: these slots run only once the schedule is resumed");
            }
            for slot in slots.upcoming(jiff::Timestamp::now(), count) {
                let local = slot.to_zoned(slots.zone().clone());
                println!("{}  {zone}  ({slot})", local.strftime("%Y-%m-%d %H:%M %Z"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn get(api: &Api<EcsTaskSchedule>, namespace: &str, name: &str) -> anyhow::Result<EcsTaskSchedule> {
    match api.get_opt(name).await {
        Ok(Some(schedule)) => Ok(schedule),
        Ok(None) => bail!("EcsTaskSchedule {name} not found in namespace {namespace} (kubectl get ets -n {namespace})"),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            bail!("the EcsTaskSchedule API is not installed in this cluster: upgrade the ecsrun chart (see the README)")
        }
        Err(error) => Err(error).with_context(|| format!("reading EcsTaskSchedule {name}")),
    }
}

async fn set_suspend(api: &Api<EcsTaskSchedule>, namespace: &str, name: &str, suspend: bool) -> anyhow::Result<()> {
    get(api, namespace, name).await?;
    let patch = serde_json::json!({ "spec": { "suspend": suspend } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(|error| match error {
        kube::Error::Api(status) => anyhow::anyhow!("the API server refused the change: {}", status.message),
        other => anyhow::Error::new(other).context(format!("patching EcsTaskSchedule {name}")),
    })?;
    println!("ecstaskschedule {name} {}", if suspend { "suspended" } else { "resumed" });
    Ok(())
}

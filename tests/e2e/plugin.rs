//! `kubectl ecsrun`, the plugin binary, against the local stack: every verb as a user types it, with the
//! user's kubeconfig and AWS credentials (moto's endpoint through AWS_ENDPOINT_URL).

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use ecsrun::api::{EcsTaskRun, Phase};
use ecsrun_testbed::{wait, workspace_binary};

use crate::{Case, Env, case, fargate_run};

/// Watched by the shared controller.
const NAMESPACE: &str = crate::operating::NAMESPACE;

pub fn cases() -> Vec<Case> {
    vec![
        case("plugin::run_wait_exits_0_for_a_succeeding_job", run_wait_succeeds),
        case("plugin::run_wait_streams_logs_and_exits_1_for_a_failing_job", run_wait_fails),
        case("plugin::logs_follow_prints_lines_while_the_task_runs", logs_follow),
        case("plugin::logs_tail_and_attempt_of_a_finished_run", logs_tail),
        case("plugin::logs_of_one_index_and_its_tail_in_status", logs_of_an_index),
        case("plugin::describe_shows_attempts_log_tail_and_events", describe),
        case("plugin::rerun_makes_a_new_run_with_the_same_spec", rerun),
        case("plugin::stop_returns_once_the_task_is_stopped", stop),
        case("plugin::errors_say_what_to_do", errors),
        case("plugin::kubectl_flags_pick_the_context_and_outputs_print_as_kubectl_does", kubectl_flags_and_outputs),
        case("plugin::schedule_next_trigger_suspend_and_resume", schedule_verbs),
    ]
}

/// `kubectl ecsrun` as the user runs it: their kubeconfig, their AWS credentials.
fn plugin(env: &Env, args: &[&str]) -> anyhow::Result<Command> {
    let mut command = Command::new(workspace_binary("kubectl-ecsrun")?);
    command
        .env("KUBECONFIG", &env.kubeconfig)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_ENDPOINT_URL", &env.moto.endpoint)
        .env_remove("AWS_PROFILE")
        .args(["-n", NAMESPACE])
        .args(args);
    Ok(command)
}

async fn output(env: &Env, args: &[&str]) -> anyhow::Result<Output> {
    let mut command = plugin(env, args)?;
    let shown = args.join(" ");
    tokio::task::spawn_blocking(move || command.output())
        .await?
        .with_context(|| format!("running kubectl ecsrun {shown}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn network(env: &Env) -> Vec<String> {
    let fixtures = &env.moto.fixtures;
    ["--launch-type", "FARGATE", "--subnet", &fixtures.subnet, "--security-group", &fixtures.security_group]
        .map(str::to_owned)
        .to_vec()
}

async fn run_wait(env: &Env, name: &str, family: &str, extra: &[&str]) -> anyhow::Result<Output> {
    let network = network(env);
    let mut args = vec!["run", name, "--ecs-cluster", "batch", "--task-definition", family, "--wait"];
    args.extend(network.iter().map(String::as_str));
    args.extend(extra);
    tokio::time::timeout(Duration::from_secs(90), output(env, &args)).await.context("run --wait did not return")?
}

async fn run_wait_succeeds(env: Arc<Env>) -> anyhow::Result<()> {
    // publisher succeeds printing what ECSRUN_E2E_PRINT says: here, a result.
    let args = ["--rm", "-c", "app", "-e", "ECSRUN_E2E_PRINT=::ecsrun-result rows=3", "--results", "app"];
    let out = run_wait(&env, "plugin-ok", "publisher", &args).await?;
    ensure!(out.status.code() == Some(0), "exit {:?}: {}", out.status.code(), text(&out.stderr));
    ensure!(text(&out.stderr).contains("plugin-ok Succeeded"), "stderr: {}", text(&out.stderr));
    ensure!(text(&out.stderr).contains("\nresult rows=3\n"), "no result printed: {}", text(&out.stderr));
    let gone = env.runs(NAMESPACE).get_opt("plugin-ok").await?;
    ensure!(gone.is_none_or(|run| run.metadata.deletion_timestamp.is_some()), "--rm left the run behind");
    Ok(())
}

async fn run_wait_fails(env: Arc<Env>) -> anyhow::Result<()> {
    // chatty prints 50 lines and exits 3; the command line's own environment reaches the container.
    let out = run_wait(&env, "plugin-fail", "chatty", &["-c", "app", "-e", "ECSRUN_E2E_LOG_LINES=12"]).await?;
    ensure!(out.status.code() == Some(1), "exit {:?}: {}", out.status.code(), text(&out.stderr));
    let stdout = text(&out.stdout);
    let expected: String = (1..=12).map(|i| format!("app: line {i} of 12\n")).collect();
    ensure!(stdout == expected, "streamed logs:\n{stdout}\nstderr:\n{}", text(&out.stderr));
    ensure!(text(&out.stderr).contains("plugin-fail Failed"), "stderr: {}", text(&out.stderr));
    Ok(())
}

async fn logs_follow(env: Arc<Env>) -> anyhow::Result<()> {
    // 16 lines, one every half second: the task runs about 8 s.
    let extra = "  overrides:\n    containerOverrides:\n    - name: app\n      environment:\n      - {name: ECSRUN_E2E_LOG_LINES, value: \"16\"}\n      - {name: ECSRUN_E2E_LOG_EVERY, value: \"0.5\"}\n      - {name: ECSRUN_E2E_RUN_SECONDS, value: \"8\"}\n";
    env.create(NAMESPACE, &env.manifest(&fargate_run("plugin-follow", "batch", "chatty", extra))?).await?;
    let api = env.runs(NAMESPACE);
    let status = wait::until(&api, "plugin-follow", Duration::from_secs(60), "launched", wait::launched()).await?;
    let task_arn = status.task.task_arn.context("no taskArn")?;
    let mut child =
        plugin(&env, &["logs", "plugin-follow", "-f"])?.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let (first, received) =
        tokio::task::spawn_blocking(move || (received.recv_timeout(Duration::from_secs(30)), received)).await?;
    let first = first.context("logs -f printed nothing within 30s")?;
    // The first line is out while ECS still runs the task.
    let task = env.task("batch", &task_arn).await?;
    ensure!(
        task.last_status() == Some("RUNNING"),
        "the first line came only once the task was {:?}",
        task.last_status()
    );
    let exited = tokio::task::spawn_blocking(move || child.wait()).await??;
    ensure!(exited.success(), "logs -f exited {exited}");
    // Everything else, up to the end of the output.
    let rest: Vec<String> = tokio::task::spawn_blocking(move || received.iter().collect()).await?;
    let printed: Vec<String> = std::iter::once(first).chain(rest).collect();
    let expected: Vec<String> = (1..=16).map(|i| format!("app: line {i} of 16")).collect();
    ensure!(printed == expected, "logs -f printed {printed:?}");
    Ok(())
}

async fn finished_chatty(env: &Env, name: &str) -> anyhow::Result<()> {
    env.create(NAMESPACE, &env.manifest(&fargate_run(name, "batch", "chatty", ""))?).await?;
    wait::until(&env.runs(NAMESPACE), name, Duration::from_secs(60), "Failed", wait::has_condition("Failed")).await?;
    Ok(())
}

async fn logs_tail(env: Arc<Env>) -> anyhow::Result<()> {
    finished_chatty(&env, "plugin-tail").await?;
    let out = output(&env, &["logs", "plugin-tail", "--tail", "5"]).await?;
    ensure!(out.status.success(), "logs --tail failed: {}", text(&out.stderr));
    let expected: String = (46..=50).map(|i| format!("app: line {i} of 50\n")).collect();
    ensure!(text(&out.stdout) == expected, "logs --tail 5:\n{}", text(&out.stdout));
    let out = output(&env, &["logs", "plugin-tail", "--attempt", "1", "-c", "app"]).await?;
    ensure!(out.status.success(), "logs --attempt 1 failed: {}", text(&out.stderr));
    ensure!(text(&out.stdout).lines().count() == 50, "the whole stream: {}", text(&out.stdout));
    let out = output(&env, &["logs", "plugin-tail", "--attempt", "2"]).await?;
    ensure!(
        out.status.code() == Some(1) && text(&out.stderr).contains("no task for attempt 2"),
        "{}",
        text(&out.stderr)
    );
    Ok(())
}

async fn logs_of_an_index(env: Arc<Env>) -> anyhow::Result<()> {
    // Two tasks of chatty: index 0 prints 50 lines, index 1 three; both exit 3 and run to their end.
    let extra = "  count: 2\n  retryPolicy:\n    failFast: false\n  overrides:\n    containerOverrides:\n    - name: app\n      environment:\n      - {name: ECSRUN_E2E_INDEX_1_LOG_LINES, value: \"3\"}\n";
    env.create(NAMESPACE, &env.manifest(&fargate_run("plugin-indexed", "batch", "chatty", extra))?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "plugin-indexed", Duration::from_secs(60), "Failed", wait::has_condition("Failed")).await?;
    let lane = status.tasks.iter().find(|t| t.index == 1).context("no index 1")?;
    let tail = lane.task.containers.iter().find(|c| c.name == "app").and_then(|c| c.log_tail.clone());
    ensure!(
        tail.as_deref() == Some("app: line 1 of 3\napp: line 2 of 3\napp: line 3 of 3"),
        "index 1's logTail {tail:?}"
    );
    let out = output(&env, &["logs", "plugin-indexed", "--index", "1"]).await?;
    ensure!(out.status.success(), "logs --index 1 failed: {}", text(&out.stderr));
    ensure!(text(&out.stdout) == "app: line 1 of 3\napp: line 2 of 3\napp: line 3 of 3\n", "{}", text(&out.stdout));
    let out = output(&env, &["logs", "plugin-indexed", "--index", "0", "--tail", "1"]).await?;
    ensure!(text(&out.stdout) == "app: line 50 of 50\n", "index 0: {}", text(&out.stdout));
    Ok(())
}

async fn describe(env: Arc<Env>) -> anyhow::Result<()> {
    finished_chatty(&env, "plugin-describe").await?;
    // The Failed Event is published right after the status write the wait saw.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let out = output(&env, &["describe", "plugin-describe"]).await?;
    let shown = text(&out.stdout);
    ensure!(out.status.success(), "describe failed: {}", text(&out.stderr));
    for expected in [
        "Runs:         task definition chatty",
        "Phase:        Failed (ContainerFailed)",
        "Attempts:",
        "app=3",
        "Last lines:",
        "      app: line 50 of 50",
        "Usage:",
        "Events:",
        "Failed",
    ] {
        ensure!(shown.contains(expected), "describe lacks {expected:?}:\n{shown}");
    }
    let out = output(&env, &["describe", "plugin-describe", "-o", "json"]).await?;
    let run: EcsTaskRun = serde_json::from_slice(&out.stdout).context("describe -o json is not an EcsTaskRun")?;
    ensure!(run.status.and_then(|s| s.task.phase) == Some(Phase::Failed), "describe -o json");
    Ok(())
}

async fn rerun(env: Arc<Env>) -> anyhow::Result<()> {
    env.create(NAMESPACE, &env.manifest(&fargate_run("plugin-rerun", "batch", "db-dump", "  group: nightly\n"))?)
        .await?;
    let out = output(&env, &["rerun", "plugin-rerun"]).await?;
    ensure!(out.status.success(), "rerun failed: {}", text(&out.stderr));
    let name = text(&out.stdout).trim().to_owned();
    ensure!(name.starts_with("plugin-rerun-") && !name.contains(char::is_whitespace), "printed {name:?}");
    let api = env.runs(NAMESPACE);
    let (original, rerun) = (api.get("plugin-rerun").await?, api.get(&name).await?);
    ensure!(rerun.spec == original.spec, "the spec differs:\n{:?}\n{:?}", rerun.spec, original.spec);
    let status =
        wait::until(&api, &name, Duration::from_secs(60), "Succeeded", wait::has_condition("Succeeded")).await?;
    ensure!(status.task.task_arn.is_some(), "the rerun launched nothing");
    // A rerun of a rerun is named after the first run.
    let out = output(&env, &["rerun", &name, "-o", "json"]).await?;
    let again: EcsTaskRun = serde_json::from_slice(&out.stdout).context("rerun -o json")?;
    ensure!(again.metadata.name.is_some_and(|n| n.starts_with("plugin-rerun-") && n != name), "second rerun");
    Ok(())
}

async fn stop(env: Arc<Env>) -> anyhow::Result<()> {
    env.create(NAMESPACE, &env.manifest(&fargate_run("plugin-stop", "batch", "sleeper", ""))?).await?;
    let api = env.runs(NAMESPACE);
    let status =
        wait::until(&api, "plugin-stop", Duration::from_secs(60), "RUNNING", wait::has_last_status("RUNNING")).await?;
    let task_arn = status.task.task_arn.context("no taskArn")?;
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        output(&env, &["stop", "plugin-stop", "--reason", "e2e: plugin stop"]),
    )
    .await
    .context("stop did not return")??;
    ensure!(out.status.success(), "stop failed: {}", text(&out.stderr));
    ensure!(text(&out.stdout).contains("plugin-stop Failed"), "stop said: {}", text(&out.stdout));
    // Returned once STOPPED: ECS says so already.
    let task = env.task("batch", &task_arn).await?;
    ensure!(task.last_status() == Some("STOPPED"), "after stop the task is {:?}", task.last_status());
    ensure!(
        task.stopped_reason() == Some("e2e: plugin stop [ecsrun:stop]"),
        "stoppedReason {:?}: the reason given, then why ecsrun stopped it",
        task.stopped_reason()
    );
    let run = api.get("plugin-stop").await?;
    ensure!(run.status.is_some_and(|s| s.task.reason_str() == Some("Stopped")), "the run's reason");
    Ok(())
}

async fn errors(env: Arc<Env>) -> anyhow::Result<()> {
    let out = output(&env, &["logs", "no-such-run"]).await?;
    ensure!(out.status.code() == Some(1), "exit {:?}", out.status.code());
    ensure!(text(&out.stderr).contains("EcsTaskRun no-such-run not found in namespace"), "{}", text(&out.stderr));
    let out =
        output(&env, &["run", "--ecs-cluster", "batch", "--task-definition", "db-dump", "--", "echo", "hi"]).await?;
    ensure!(out.status.code() == Some(1) && text(&out.stderr).contains("--container NAME"), "{}", text(&out.stderr));
    // The API server's own words for a spec it refuses.
    let out =
        output(&env, &["run", "bad", "--ecs-cluster", "batch", "--task-definition", "db-dump", "--timeout", "soon"])
            .await?;
    ensure!(out.status.code() == Some(1) && text(&out.stderr).contains("spec.wait.timeout"), "{}", text(&out.stderr));
    Ok(())
}

/// `--kubeconfig` and `--context` choose the cluster as kubectl's would (the file's current context points
/// nowhere), `-n` the namespace; `-o name|yaml|wide` print the run as kubectl does.
async fn kubectl_flags_and_outputs(env: Arc<Env>) -> anyhow::Result<()> {
    let mut config: serde_json::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&env.kubeconfig)?)?;
    let working = config["current-context"].as_str().context("the e2e kubeconfig has a current context")?.to_owned();
    config["clusters"].as_array_mut().context("clusters")?.push(serde_json::json!(
        {"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9"}}));
    let user = config["contexts"][0]["context"]["user"].clone();
    config["contexts"].as_array_mut().context("contexts")?.push(serde_json::json!(
        {"name": "nowhere", "context": {"cluster": "nowhere", "user": user}}));
    config["current-context"] = "nowhere".into();
    let kubeconfig = tempfile::NamedTempFile::new()?;
    std::fs::write(kubeconfig.path(), serde_yaml_ng::to_string(&config)?)?;
    let path = kubeconfig.path().display().to_string();
    // Runs with no KUBECONFIG at all: only the flags say where to go.
    let plugin = |args: &[&str]| {
        let mut command = Command::new(workspace_binary("kubectl-ecsrun")?);
        command.env_remove("KUBECONFIG").env("HOME", "/nonexistent").args(["--kubeconfig", &path]).args(args);
        anyhow::Ok(command)
    };
    let run =
        |mut command: Command| async move { anyhow::Ok(tokio::task::spawn_blocking(move || command.output()).await??) };

    let network = network(&env);
    let mut args = vec!["run", "plugin-flags", "--ecs-cluster", "batch", "--task-definition", "db-dump", "-o", "name"];
    args.extend(network.iter().map(String::as_str));
    let out = run(plugin(&[&["--context", &working, "-n", NAMESPACE], &args[..]].concat())?).await?;
    ensure!(out.status.success(), "run with --context: {}", text(&out.stderr));
    ensure!(text(&out.stdout) == "ecstaskrun.ecsrun.dev/plugin-flags\n", "-o name printed {:?}", text(&out.stdout));
    ensure!(env.runs(NAMESPACE).get_opt("plugin-flags").await?.is_some(), "the run is not in {NAMESPACE}");

    // Flags after the verb mean the same.
    let out =
        run(plugin(&["describe", "plugin-flags", "-o", "yaml", "--context", &working, "--namespace", NAMESPACE])?)
            .await?;
    ensure!(out.status.success(), "describe -o yaml: {}", text(&out.stderr));
    let described: EcsTaskRun = serde_yaml_ng::from_str(&text(&out.stdout))?;
    ensure!(described.spec.cluster == "batch", "-o yaml read back {:?}", described.spec.cluster);

    let out = run(plugin(&["rerun", "plugin-flags", "-o", "wide", "--context", &working, "-n", NAMESPACE])?).await?;
    let table = text(&out.stdout);
    ensure!(out.status.success() && table.starts_with("NAME ") && table.contains("ATTEMPTS"), "-o wide: {table}");

    // Without --context the file's current context is used, and it points nowhere.
    let out = run(plugin(&["describe", "plugin-flags", "-n", NAMESPACE])?).await?;
    ensure!(!out.status.success(), "the broken current context was not used");
    let out = run(plugin(&["describe", "plugin-flags", "--context", "staging"])?).await?;
    ensure!(text(&out.stderr).contains("--context staging"), "an unknown context: {}", text(&out.stderr));
    Ok(())
}

/// `schedule next` lists the schedule's slots in its zone; `trigger` creates a run now, marked manual and
/// owned by the schedule, which the controller counts as active; `suspend` and `resume` flip spec.suspend.
async fn schedule_verbs(env: Arc<Env>) -> anyhow::Result<()> {
    use crate::schedules::{apply, delete_schedule, runs_of, schedule_of, schedule_yaml};
    let name = "plugin-nightly";
    let fields = "  timeZone: America/New_York\n";
    let yaml = schedule_yaml(name, fields, "").replace("\"* * * * *\"", "\"0 2 * * *\"");
    apply(&env, NAMESPACE, &yaml).await?;

    let next = output(&env, &["schedule", "next", name, "--count", "3"]).await?;
    ensure!(next.status.success(), "schedule next: {}", text(&next.stderr));
    let lines: Vec<String> = text(&next.stdout).lines().map(str::to_owned).collect();
    let slots = ecsrun::api::cron::Slots::new("0 2 * * *", Some("America/New_York"))?;
    let expected = slots.upcoming(jiff::Timestamp::now(), 3);
    ensure!(lines.len() == 3, "schedule next printed {lines:?}");
    for (line, slot) in lines.iter().zip(&expected) {
        ensure!(
            line.contains(" 02:00 E") && line.contains(&slot.to_string()),
            "{line} is not {slot} at 02:00 New York time"
        );
    }

    let triggered = output(&env, &["schedule", "trigger", name]).await?;
    ensure!(triggered.status.success(), "schedule trigger: {}", text(&triggered.stderr));
    let run_name = text(&triggered.stdout).trim().to_owned();
    ensure!(run_name.starts_with(&format!("{name}-manual-")), "trigger printed {run_name:?}");
    let runs = runs_of(&env, NAMESPACE, name).await?;
    let run =
        runs.iter().find(|run| run.metadata.name.as_deref() == Some(run_name.as_str())).context("the triggered run")?;
    let annotations = run.metadata.annotations.clone().unwrap_or_default();
    ensure!(annotations.get(ecsrun::api::TRIGGER_ANNOTATION).map(String::as_str) == Some("manual"), "{annotations:?}");
    let owner = run.metadata.owner_references.as_ref().and_then(|owners| owners.first()).context("owner")?;
    ensure!(owner.kind == "EcsTaskSchedule" && owner.name == name, "{owner:?}");
    // The controller sees it among the schedule's runs (active, then finished) and creates no slot for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = schedule_of(&env, NAMESPACE, name).await?.status.unwrap_or_default();
        let listed = status.active.iter().any(|active| active.name == run_name);
        let finished = status.last_successful_time.is_some();
        if listed || finished {
            ensure!(status.last_schedule_time.is_none(), "a manual run moved lastScheduleTime: {status:?}");
            break;
        }
        ensure!(std::time::Instant::now() < deadline, "the triggered run never showed in status: {status:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let suspended = output(&env, &["schedule", "suspend", name]).await?;
    ensure!(suspended.status.success(), "schedule suspend: {}", text(&suspended.stderr));
    ensure!(schedule_of(&env, NAMESPACE, name).await?.spec.suspend, "suspend did not set spec.suspend");
    let listed = output(&env, &["schedule", "next", name, "--count", "1"]).await?;
    ensure!(text(&listed.stdout).starts_with("# suspended"), "next of a suspended schedule: {}", text(&listed.stdout));
    let resumed = output(&env, &["schedule", "resume", name]).await?;
    ensure!(resumed.status.success(), "schedule resume: {}", text(&resumed.stderr));
    ensure!(!schedule_of(&env, NAMESPACE, name).await?.spec.suspend, "resume did not clear spec.suspend");
    let missing = output(&env, &["schedule", "next", "no-such-schedule"]).await?;
    ensure!(
        !missing.status.success() && text(&missing.stderr).contains("kubectl get ets"),
        "{}",
        text(&missing.stderr)
    );
    delete_schedule(&env, NAMESPACE, name).await
}

"""moto's ECS server with the few ECS behaviours ecsrun's tests rely on and moto 5.2.5 lacks.

It drives moto's own models and adds nothing else: no new API, no emulator of its own.
- Every container of the task definition is reported (moto reports only the first), without an exit
  code until the task stops.
- A task runs for ECSRUN_E2E_RUN_SECONDS (default 3) and then STOPs on its own with stopCode
  EssentialContainerExited; each container exits with its ECSRUN_E2E_EXIT_CODE (default 0). A task with
  ECSRUN_E2E_HOLD=running stays RUNNING until StopTask; with ECSRUN_E2E_HOLD=provisioning it never
  starts (PROVISIONING, containers PENDING, no startedAt) until StopTask, as a task waiting for capacity. The variables come from the task definition's
  containers and the RunTask container overrides, so a test chooses per task definition or per run; in a
  run of several tasks, ECSRUN_E2E_INDEX_<i>_<KNOB> sets ECSRUN_E2E_<KNOB> for the task whose
  ECSRUN_TASK_INDEX is i (a shard whose data makes it fail, or run longer), and ECSRUN_E2E_ATTEMPT_<n>_<KNOB>
  for attempt n (ECSRUN_ATTEMPT). ECSRUN_E2E_STOP_CODE and ECSRUN_E2E_STOPPED_REASON replace the stop code
  and reason of a task that stops on its own (a Spot interruption: SpotInterruption, exit code 143).
- StopTask gives stopCode UserInitiated and exit code 143 (SIGTERM), as ECS does.
- A container with the awslogs driver and ECSRUN_E2E_LOG_LINES=N "prints" N lines (`<name>: line i of N`)
  into moto's own CloudWatch Logs backend, in the stream the driver names (`prefix/container/task-id`),
  spread over the run (or one every ECSRUN_E2E_LOG_EVERY seconds); whatever is left is written before the
  task is reported STOPPED. A log group that does not exist gets nothing, as the driver cannot write.
  ECSRUN_E2E_PRINT=text adds the text's lines after those, once the task stops (results, as a task
  prints `::ecsrun-result name=value`); `${VAR}` in it is the container's environment variable VAR.
- ECS forgets a stopped task: an hour after it stops (ECSRUN_E2E_FORGET_SECONDS to shorten it), it is
  no longer described or listed (moto keeps every task forever).
- Tasks get createdAt / startedAt / stoppedAt, and the task-level cpu and memory ECS reports.
- awsvpcConfiguration without securityGroups is accepted (ECS uses the VPC's default group; moto
  raised KeyError).
- RunTask honours clientToken as ECS does (moto ignores it): per cluster, for 24 hours, the same token
  with the same parameters returns the tasks it started; with other parameters it fails with
  ConflictException naming them in resourceIds.
- DescribeTasks looks the requested ARNs up in the requested cluster's own task table (moto compares
  every task of every cluster with every requested ARN, which is what limits it at thousands of tasks);
  IDs and ARNs of other clusters still go through moto's own lookup.
- A Fargate task definition whose containers have no memory of their own (only the task's) runs, as it
  does on ECS; moto summed the containers' memory and answered RunTask with HTTP 500.
- DescribeTasks with and without include=TAGS no longer race: moto switches tags on and off in a map
  shared by every request, so a concurrent call without TAGS could strip another's tags.
- AssumeRole keeps the session tags it was sent (moto drops them), on moto's own AssumedRole record, so
  tests read a session's external ID, name and tags back from /moto-api/data.json.
- RunTask's enableECSManagedTags adds ECS's aws:ecs:clusterName tag to the task, and its
  volumeConfigurations are kept on moto's task record (DescribeTasks shows them only as attachments).
- ECS's task state change events (task_events.py): every transition the launcher makes (a task created, a task stopped)
  goes into moto's own EventBridge as an "ECS Task State Change" event with a rising `detail.version`
  (DescribeTasks reports the same version), and moto's rule routes it to an SQS queue, as AWS does. Tasks
  move on a clock of their own, not only when described. ECSRUN_E2E_EVENTS (comma-separated) spoils a
  task's events: `drop` (all), `drop-stopped` (the STOPPED one), `duplicate` (each twice), `reorder` (each
  but the last held back until after the next), `delay=S` (each S seconds late). `--event-faults
  duplicate=0.1,reorder=0.1,drop=0.01` spoils that share of every task's events, seeded by --seed. The
  events moto's rules deliver carry the envelope's `account`, as AWS's do (moto's default target input
  left it out).
- Fixtures for tests and the demo (VPC with DNS hostnames, subnet, security group, clusters, task
  definitions) are created through moto's own API with boto3, and their IDs written as JSON.

Run: python launcher.py --port 5000 --fixtures fixtures.json [--parent-pid PID] [--event-faults SPEC --seed N]
"""

import argparse
import datetime
import json
import logging
import os
import string
import threading
import time
import types

import boto3
from moto.core.responses import ActionResult
from moto.ecs import models as ecs
from moto.ecs import responses as ecs_responses
from moto.ecs.exceptions import ECSException
from moto.logs.models import logs_backends
from moto.moto_api import state_manager
from moto.server import ThreadedMotoServer
from moto.sts import models as sts
from moto.sts import responses as sts_responses

import task_events

REGION = "eu-west-1"
HOLD = "ECSRUN_E2E_HOLD"
EXIT_CODE = "ECSRUN_E2E_EXIT_CODE"
RUN_SECONDS = "ECSRUN_E2E_RUN_SECONDS"
FORGET_SECONDS = "ECSRUN_E2E_FORGET_SECONDS"
LOG_LINES = "ECSRUN_E2E_LOG_LINES"
LOG_EVERY = "ECSRUN_E2E_LOG_EVERY"
PRINT = "ECSRUN_E2E_PRINT"
STOP_CODE = "ECSRUN_E2E_STOP_CODE"
STOPPED_REASON = "ECSRUN_E2E_STOPPED_REASON"
EVENTS = "ECSRUN_E2E_EVENTS"
ECS_REMEMBERS_STOPPED = 3600


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _environment(task, index):
    """The environment of the task definition's container `index`, with the run's overrides applied."""
    definition = task._backend.describe_task_definition(task.task_definition_arn).container_definitions[index]
    env = {var["name"]: var.get("value", "") for var in definition.get("environment") or []}
    for override in (task.overrides or {}).get("containerOverrides", []) or []:
        if override.get("name") == definition.get("name"):
            env.update({var["name"]: var.get("value", "") for var in override.get("environment", []) or []})
    for prefix in (f"ECSRUN_E2E_INDEX_{env.get('ECSRUN_TASK_INDEX')}_", f"ECSRUN_E2E_ATTEMPT_{env.get('ECSRUN_ATTEMPT')}_"):
        env.update({"ECSRUN_E2E_" + name[len(prefix):]: value for name, value in list(env.items()) if name.startswith(prefix)})
    return env


_print_lock = threading.Lock()


def _print_due(task, final=False):
    """Writes what each awslogs container of the task has printed by now into moto's CloudWatch Logs, as
    the driver would: all of it once the task stops (`final`)."""
    if not getattr(task, "_ecsrun_prints", False):
        return
    with _print_lock:
        printed = task.__dict__.setdefault("_ecsrun_printed", {})
        definitions = task._backend.describe_task_definition(task.task_definition_arn).container_definitions
        elapsed = time.monotonic() - task._ecsrun_started
        for index, definition in enumerate(definitions):
            log = definition.get("logConfiguration") or {}
            env = _environment(task, index)
            total = int(env.get(LOG_LINES, "0") or 0)
            extra = string.Template(env[PRINT]).safe_substitute(env).split("\n") if env.get(PRINT) else []
            if log.get("logDriver") != "awslogs" or (total <= 0 and not extra):
                continue
            every = float(env.get(LOG_EVERY) or float(env.get(RUN_SECONDS, "3")) / max(total, 1))
            due = total if final or every <= 0 else min(total, int(elapsed / every))
            done = printed.get(index, 0)
            extra = extra if final and not printed.get((index, PRINT)) else []
            if due <= done and not extra:
                continue
            printed[index] = due
            printed[(index, PRINT)] = printed.get((index, PRINT)) or bool(extra)
            options = log.get("options") or {}
            backend = logs_backends[task._account_id][options.get("awslogs-region", task.region_name)]
            group = options.get("awslogs-group")
            if group not in backend.groups:
                continue
            stream = f"{options.get('awslogs-stream-prefix')}/{definition['name']}/{task.id}"
            if stream not in backend.groups[group].streams:
                backend.create_log_stream(group, stream)
            at = int(time.time() * 1000)
            lines = [{"timestamp": at, "message": f"{definition['name']}: line {n} of {total}"} for n in range(done + 1, due + 1)]
            lines += [{"timestamp": at, "message": line} for line in extra]
            backend.put_log_events(group, stream, lines)


def _printing(stop):
    """Moves every running task's output along, whoever looks at it."""
    while not stop.wait(0.2):
        for regions in list(ecs.ecs_backends.values()):
            for backend in list(regions.values()):
                for table in list(backend.tasks.values()):
                    for task in list(table.values()):
                        if getattr(task, "_ecsrun_prints", False) and task.last_status != "STOPPED":
                            try:
                                _print_due(task)
                            except Exception:  # a task definition gone meanwhile: nothing to print
                                logging.exception("printing task output")


_finish_lock = threading.Lock()


def _finish(task, stop_code, exit_code=None):
    """Snapshot a stopped task the way ECS reports it: every container stopped with its exit code."""
    with _finish_lock:  # the clock thread and a request may both find it due: one STOPPED event
        if getattr(task, "_ecsrun_finished", False):
            return
        task._ecsrun_finished = True
    _print_due(task, final=True)
    task.last_status = "STOPPED"
    task.desired_status = "STOPPED"
    task.stop_code = stop_code
    task.stopped_at = _now()
    task._ecsrun_forget_at = time.monotonic() + float(_environment(task, 0).get(FORGET_SECONDS, ECS_REMEMBERS_STOPPED))
    for index, container in enumerate(task.containers):
        container.exitCode = exit_code if exit_code is not None else int(_environment(task, index).get(EXIT_CODE, "0"))
        container.last_status = "STOPPED"
    _live.discard(task)
    _changed(task)


_original_init = ecs.Task.__init__


def _init(self, *args, **kwargs):
    network = kwargs.get("networking_configuration") or {}
    if "awsvpcConfiguration" in network:
        network["awsvpcConfiguration"].setdefault("securityGroups", [])
    _original_init(self, *args, **kwargs)
    # moto models only the first container; ECS reports every container of the task definition.
    definitions = kwargs["task_definition"].container_definitions
    self.containers = [ecs.Container(kwargs["task_definition"]) for _ in definitions]
    for container, definition in zip(self.containers, definitions):
        container.name = definition.get("name")
        container.image = definition.get("image")
        container.memory = definition.get("memory")
        container.environment = definition.get("environment")
        container.exitCode = None  # moto says 0 from the start; ECS has no exit code before the stop
        container.last_status = "RUNNING"
    # ECS reports the task-level CPU and memory (the overrides' when given); moto reports neither.
    overrides = kwargs.get("overrides") or {}
    self.cpu = str(overrides.get("cpu") or kwargs["task_definition"].cpu or "") or None
    self.memory = str(overrides.get("memory") or kwargs["task_definition"].memory or "") or None
    self.created_at = _now()
    self.started_at = self.created_at
    if _environment(self, 0).get(HOLD) == "provisioning":
        self.last_status = "PROVISIONING"
        self.started_at = None
        for container in self.containers:
            container.last_status = "PENDING"
    self._ecsrun_started = time.monotonic()
    # Read once: the clock thread looks at every live task several times a second.
    env = _environment(self, 0)
    self._ecsrun_hold = env.get(HOLD)
    self._ecsrun_run_seconds = float(env.get(RUN_SECONDS, "3"))
    self._ecsrun_stop_code = env.get(STOP_CODE, "EssentialContainerExited")
    self._ecsrun_stopped_reason = env.get(STOPPED_REASON, "Essential container in task exited")
    self._ecsrun_event_faults = [fault.strip() for fault in env.get(EVENTS, "").split(",") if fault.strip()]
    self.version = 0
    _live.add(self)
    _changed(self)
    # Decided once: the printing thread passes over the (thousands of) tasks that print nothing.
    self._ecsrun_prints = any(
        (definition.get("logConfiguration") or {}).get("logDriver") == "awslogs"
        and (int(_environment(self, index).get(LOG_LINES, "0") or 0) > 0 or _environment(self, index).get(PRINT))
        for index, definition in enumerate(definitions)
    )


def _advance(self):
    """Replaces moto's tick-based progression: run for a while, then stop on its own."""
    if self.last_status == "STOPPED":
        return
    if self._ecsrun_hold in ("running", "provisioning"):
        return
    if time.monotonic() - self._ecsrun_started >= self._ecsrun_run_seconds:
        self.stopped_reason = self._ecsrun_stopped_reason
        _finish(self, self._ecsrun_stop_code)


# Tasks not stopped yet: the clock thread moves them along whoever describes them (events need it).
_live = set()


def _clock(stop):
    while not stop.wait(0.1):
        for task in list(_live):
            try:
                task.advance()
            except Exception:  # a task whose backend was reset meanwhile
                logging.exception("advancing a task")
                _live.discard(task)


def _changed(task):
    """ECS's task state change event for the task as it is now, with the next version."""
    task.version += 1
    faults = list(getattr(task, "_ecsrun_event_faults", []))
    task_events.emitter.put((task._account_id, task.region_name, task_events.detail_of(task), faults))


_original_stop_task = ecs.EC2ContainerServiceBackend.stop_task


def _stop_task(self, cluster_str, task_str, reason):
    task = _original_stop_task(self, cluster_str, task_str, reason)
    _finish(task, "UserInitiated", exit_code=143)
    if task.started_at is None:
        # Stopped before it started: no container ran, none has an exit code (as ECS reports it).
        for container in task.containers:
            container.exitCode = None
    return task


CLIENT_TOKEN_TTL = 24 * 3600

_original_run_task_response = ecs_responses.EC2ContainerServiceResponse.run_task


def _run_task_response(self):
    """RunTask's clientToken, as ECS scopes it: per cluster, kept 24 hours."""
    token = self._get_param("clientToken")
    if not token:
        return _with_request_applied(self, _original_run_task_response(self))
    backend = self.ecs_backend
    cluster = backend._get_cluster(self._get_param("cluster", "default")).name
    request = json.loads(self.body or "{}")
    request.pop("clientToken", None)
    fingerprint = json.dumps(request, sort_keys=True)
    tokens = backend.__dict__.setdefault("_ecsrun_client_tokens", {})
    with _token_lock:
        seen = tokens.get((cluster, token))
        if seen and time.monotonic() - seen["at"] < CLIENT_TOKEN_TTL:
            if seen["fingerprint"] != fingerprint:
                conflict = ECSException(
                    "ConflictException",
                    "The specified client token has already been used in a different request.",
                )
                conflict.resourceIds = list(seen["arns"])
                raise conflict
            known = backend.tasks.get(cluster, {})
            return ActionResult({"tasks": [known[arn] for arn in seen["arns"] if arn in known], "failures": []})
        result = _with_request_applied(self, _original_run_task_response(self))
        tasks = result.result.get("tasks", [])
        tokens[(cluster, token)] = {
            "fingerprint": fingerprint, "arns": [task.task_arn for task in tasks], "at": time.monotonic(),
        }
        return result


def _with_request_applied(response, result):
    """What moto's RunTask drops: ECS's managed tags (enableECSManagedTags adds aws:ecs:clusterName) on the
    task, and the request's launch-time volumes kept on moto's own task record (`run_task_volumes`, read
    back through /moto-api/data.json), since DescribeTasks reports them only as EBS attachments."""
    request = json.loads(response.body or "{}")
    for task in result.result.get("tasks", []):
        if request.get("enableECSManagedTags"):
            cluster = task.cluster_arn.rsplit("/", 1)[-1]
            task.tags = [t for t in (task.tags or []) if t.get("key") != "aws:ecs:clusterName"]
            task.tags.append({"key": "aws:ecs:clusterName", "value": cluster})
        if request.get("volumeConfigurations"):
            task.run_task_volumes = request["volumeConfigurations"]
    return result


_MEMORY_KEYS = ("memory", "memoryReservation", "Memory", "MemoryReservation")
_original_requirements = ecs.EC2ContainerServiceBackend._calculate_task_resource_requirements


def _requirements(task_definition):
    """Containers without memory count as 0: the task-level memory is what Fargate reserves."""
    containers = [
        definition if any(key in definition for key in _MEMORY_KEYS) else dict(definition, memoryReservation=0)
        for definition in task_definition.container_definitions
    ]
    return _original_requirements(types.SimpleNamespace(container_definitions=containers))


_token_lock = threading.Lock()
_original_describe_tasks = ecs.EC2ContainerServiceBackend.describe_tasks


def _describe_tasks(self, cluster_str, tasks):
    """ARNs of the requested cluster straight from its table; anything else as moto looks it up."""
    if not tasks:
        return _original_describe_tasks(self, cluster_str, tasks)
    cluster = self._get_cluster(cluster_str)
    table = self.tasks.get(cluster.name, {})
    found, rest = [], []
    for ref in tasks:
        task = table.get(ref)
        if task is None:
            rest.append(ref)
        else:
            task.advance()
            if _forgotten(task):
                del table[ref]
            else:
                found.append(task)
    if rest:
        found.extend(task for task in _original_describe_tasks(self, cluster_str, rest) if task not in found)
    return found


def _forgotten(task):
    return getattr(task, "_ecsrun_forget_at", float("inf")) <= time.monotonic()


_original_list_tasks = ecs.EC2ContainerServiceBackend.list_tasks


def _list_tasks(self, *args, **kwargs):
    for table in self.tasks.values():
        for arn in [arn for arn, task in table.items() if _forgotten(task)]:
            del table[arn]
    return _original_list_tasks(self, *args, **kwargs)


_original_describe_tasks_response = ecs_responses.EC2ContainerServiceResponse.describe_tasks


def _describe_tasks_response(self):
    # A copy of its own, so this request's include=TAGS does not switch tags for concurrent ones.
    self.RESPONSE_KEY_PATH_TO_TRANSFORMER = dict(type(self).RESPONSE_KEY_PATH_TO_TRANSFORMER)
    return _original_describe_tasks_response(self)


_session_tags = threading.local()
_original_assume_role_response = sts_responses.TokenResponse.assume_role
_original_assume_role = sts.STSBackend.assume_role


def _assume_role_response(self):
    tags = {}
    for key, values in self.querystring.items():
        if key.startswith("Tags.member.") and key.endswith(".Key"):
            index = key[len("Tags.member."):-len(".Key")]
            tags[values[0]] = self.querystring.get(f"Tags.member.{index}.Value", [""])[0]
    _session_tags.tags = tags
    try:
        return _original_assume_role_response(self)
    finally:
        _session_tags.tags = {}


def _assume_role(self, *args, **kwargs):
    role = _original_assume_role(self, *args, **kwargs)
    role.tags = dict(getattr(_session_tags, "tags", {}) or {})
    return role


ecs.Task.__init__ = _init
ecs.Task.advance = _advance
ecs.EC2ContainerServiceBackend.stop_task = _stop_task
ecs.EC2ContainerServiceBackend.describe_tasks = _describe_tasks
ecs.EC2ContainerServiceBackend.list_tasks = _list_tasks
ecs.EC2ContainerServiceBackend._calculate_task_resource_requirements = staticmethod(_requirements)
ecs_responses.EC2ContainerServiceResponse.run_task = _run_task_response
ecs_responses.EC2ContainerServiceResponse.describe_tasks = _describe_tasks_response
sts_responses.TokenResponse.assume_role = _assume_role_response
sts.STSBackend.assume_role = _assume_role


def seed(endpoint):
    """Creates what tests and the demo run tasks in, and returns the IDs moto chose."""
    session = dict(region_name=REGION, endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test")
    ec2 = boto3.client("ec2", **session)
    client = boto3.client("ecs", **session)
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24")["Subnet"]["SubnetId"]
    # Every awsvpc task takes an address: a /17 has room for the fleet benchmark at N = 30,000.
    bench_subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.128.0/17")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(VpcId=vpc, GroupName="ecsrun-tasks", Description="ecsrun tasks")["GroupId"]
    for cluster in ("batch", "reports", "default", "bench", "events"):
        client.create_cluster(clusterName=cluster)
    queues = {name: _event_queue(session, name, cluster) for name, cluster in EVENT_QUEUES.items()}

    def register(family, env=None, sidecar=False, container_memory=True, log_group=None):
        containers = [{
            "name": "app",
            "image": "public.ecr.aws/docker/library/busybox:latest",
            "essential": True,
            "environment": [{"name": k, "value": v} for k, v in (env or {}).items()],
        }]
        if container_memory:
            containers[0]["memory"] = 256
        if log_group:
            containers[0]["logConfiguration"] = {"logDriver": "awslogs", "options": {
                "awslogs-group": log_group, "awslogs-region": REGION, "awslogs-stream-prefix": "ecs",
            }}
        if sidecar:
            # A log router that exits non-zero: it must not fail a run whose essential container succeeded.
            containers.append({
                "name": "log-router", "image": "fluent-bit:latest", "essential": False, "memory": 128,
                "environment": [{"name": EXIT_CODE, "value": "1"}],
            })
        client.register_task_definition(
            family=family, networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
            containerDefinitions=containers,
        )

    register("nightly-report", sidecar=True)
    register("db-dump")
    register("transform")
    register("send-digest")
    register("sleeper", {HOLD: "running"})
    register("failing", {EXIT_CODE: "3"})
    register("task-memory-only", container_memory=False)
    logs = boto3.client("logs", **session)
    logs.create_log_group(logGroupName="/ecsrun/e2e")
    # Prints 50 lines and exits 3; the second writes to a log group that does not exist.
    register("chatty", {EXIT_CODE: "3", LOG_LINES: "50"}, log_group="/ecsrun/e2e")
    register("chatty-lost", {EXIT_CODE: "3", LOG_LINES: "50"}, log_group="/ecsrun/missing")
    # Prints a few lines and succeeds; a run's ECSRUN_E2E_PRINT override adds its results.
    register("publisher", {LOG_LINES: "3"}, log_group="/ecsrun/e2e")
    return {
        "region": REGION, "vpc": vpc, "subnet": subnet, "benchSubnet": bench_subnet, "securityGroup": group,
        "eventQueues": queues,
    }


# Queues of task events, each fed by a rule for one cluster: "ecsrun-task-events" for the e2e suite's
# "events" cluster, "ecsrun-bench-events" for the benchmark's.
EVENT_QUEUES = {"ecsrun-task-events": "events", "ecsrun-bench-events": "bench"}


def _event_queue(session, name, cluster):
    """The queue, its dead-letter queue and access policy, and the EventBridge rule, as docs/task-events.md
    sets them up on AWS (moto does not enforce the policy)."""
    sqs = boto3.client("sqs", **session)
    events = boto3.client("events", **session)
    account = boto3.client("sts", **session).get_caller_identity()["Account"]
    dead = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=name, Attributes={
        "MessageRetentionPeriod": "345600",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": "5"}),
    })["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {
            "startedBy": [{"prefix": "ecsrun/"}],
            "clusterArn": [f"arn:aws:ecs:{REGION}:{account}:cluster/{cluster}"],
        },
    }
    rule_arn = events.put_rule(Name=name, EventPattern=json.dumps(pattern), State="ENABLED")["RuleArn"]
    events.put_targets(Rule=name, Targets=[{"Id": "sqs", "Arn": queue_arn}])
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "EventBridgeSendsTaskEvents", "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage", "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
    }]}
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
    return url


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fixtures", required=True, help="where to write the fixture IDs (JSON)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    parser.add_argument("--event-faults", default="", help="shares of task events spoiled: duplicate=0.1,reorder=0.1,drop=0.01")
    parser.add_argument("--seed", type=int, default=0, help="seed of the spoiled events' draw")
    args = parser.parse_args()
    task_events.emitter.random.seed(args.seed)
    for part in filter(None, args.event_faults.split(",")):
        fault, share = part.split("=", 1)
        task_events.emitter.shares[fault.strip()] = float(share)

    # moto's own progression is replaced by _advance; keep it from moving tasks by itself.
    state_manager.set_transition(model_name="ecs::task", transition={"progression": "manual", "times": 10**9})
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns real errors
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    fixtures = seed(f"http://127.0.0.1:{args.port}")
    tmp = args.fixtures + ".tmp"
    with open(tmp, "w") as out:
        json.dump(fixtures, out)
    os.replace(tmp, args.fixtures)
    print(f"moto: serving ECS on http://127.0.0.1:{args.port}", flush=True)

    stop = threading.Event()
    threading.Thread(target=_printing, args=(stop,), daemon=True).start()
    threading.Thread(target=_clock, args=(stop,), daemon=True).start()
    threading.Thread(target=task_events.emitter.run, args=(stop,), daemon=True).start()
    try:
        while not stop.wait(1.0):
            if args.parent_pid and not _alive(args.parent_pid):
                break
    except KeyboardInterrupt:
        pass
    server.stop()


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


if __name__ == "__main__":
    main()

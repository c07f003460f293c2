"""ECS's task state change events for moto's launcher: the event of a task as it is now, and the thread that
puts events into moto's own EventBridge (whose rules route them to SQS, as on AWS), spoiled as asked:
dropped, duplicated, held back until the task's next event, or delayed."""

import datetime
import heapq
import json
import logging
import queue
import random
import time

from moto.events.models import events_backends
from moto.events.utils import EventTemplateParser

# A rule target without an input transformer gets the whole event on AWS, "account" included (ecsrun drops
# an envelope whose account is not the task's). moto's default target input leaves "account" out of its
# template though its paths map reads it: put it back, for every rule moto serves.
if '"account"' not in EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE:
    EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE.replace(
        '"version": "0", ', '"version": "0", "account": "<account>", ', 1
    )
    assert '"account"' in EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE, "moto's event template changed"


def iso(moment):
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


def detail_of(task):
    """The event's `detail` for the task as it is now (its `version` already raised)."""
    detail = {
        "clusterArn": task.cluster_arn,
        "taskArn": task.task_arn,
        "taskDefinitionArn": task.task_definition_arn,
        "lastStatus": task.last_status,
        "desiredStatus": task.desired_status,
        "startedBy": getattr(task, "started_by", None),
        "group": getattr(task, "group", None),
        "launchType": getattr(task, "launch_type", None),
        "capacityProviderName": getattr(task, "capacity_provider_name", None),
        "cpu": task.cpu,
        "memory": task.memory,
        "stopCode": getattr(task, "stop_code", None),
        "stoppedReason": getattr(task, "stopped_reason", None),
        "createdAt": iso(task.created_at),
        "startedAt": iso(task.started_at),
        "stoppedAt": iso(getattr(task, "stopped_at", None)),
        "updatedAt": iso(datetime.datetime.now(datetime.timezone.utc)),
        "containers": [
            {k: v for k, v in {"name": c.name, "lastStatus": c.last_status, "exitCode": c.exitCode}.items() if v is not None}
            for c in task.containers
        ],
        "version": task.version,
    }
    return {k: v for k, v in detail.items() if v is not None}


class Emitter:
    """Sends task events into moto's EventBridge from one thread, spoiled as asked: dropped, duplicated,
    held back until the task's next event, or delayed."""

    def __init__(self):
        self.inbox = queue.Queue()
        self.shares = {}
        self.random = random.Random(0)
        self.held = {}
        self.later = []
        self.sent = 0

    def put(self, item):
        self.inbox.put(item)

    def run(self, stop):
        while not stop.is_set():
            try:
                item = self.inbox.get(timeout=0.05)
            except queue.Empty:
                item = None
            if item is not None:
                try:
                    self._route(*item)
                except Exception:
                    logging.exception("emitting a task event")
            now = time.monotonic()
            while self.later and self.later[0][0] <= now:
                _, _, args = heapq.heappop(self.later)
                self._send(*args)

    def _spoiled(self, fault, faults):
        return fault in faults or self.random.random() < self.shares.get(fault, 0.0)

    def _route(self, account, region, detail, faults):
        arn, final = detail["taskArn"], detail.get("lastStatus") == "STOPPED"
        if "drop" in faults or (final and "drop-stopped" in faults) or self._spoiled("drop", ()):
            return self._release(arn)
        copies = 2 if self._spoiled("duplicate", faults) else 1
        delay = next((float(f.split("=", 1)[1]) for f in faults if f.startswith("delay=")), 0.0)
        if not final and self._spoiled("reorder", faults):
            self._release(arn)
            self.held[arn] = (account, region, detail, copies)
            return
        self._schedule(delay, (account, region, detail, copies))
        self._release(arn)

    def _release(self, arn):
        """A held-back event goes out after the one that overtook it."""
        held = self.held.pop(arn, None)
        if held:
            self._schedule(0.0, held)

    def _schedule(self, delay, args):
        if delay <= 0:
            return self._send(*args)
        heapq.heappush(self.later, (time.monotonic() + delay, id(args), args))

    def _send(self, account, region, detail, copies):
        entry = {"Source": "aws.ecs", "DetailType": "ECS Task State Change", "Detail": json.dumps(detail),
                 "Resources": [detail["taskArn"]]}
        for _ in range(copies):
            events_backends[account][region].put_events([entry])
            self.sent += 1


emitter = Emitter()

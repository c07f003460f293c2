use super::*;

/// A STOPPED task as EventBridge delivers it to SQS (the shape of AWS's documented example).
const STOPPED: &str = r#"{
  "version": "0",
  "id": "3317b2af-7005-947d-b652-f55e762e571a",
  "detail-type": "ECS Task State Change",
  "source": "aws.ecs",
  "account": "111122223333",
  "time": "2026-12-03T10:00:12Z",
  "region": "eu-west-1",
  "resources": ["arn:aws:ecs:eu-west-1:111122223333:task/batch/b99d40b3"],
  "detail": {
    "attachments": [],
    "clusterArn": "arn:aws:ecs:eu-west-1:111122223333:cluster/batch",
    "containers": [
      {"containerArn": "arn:aws:ecs:eu-west-1:111122223333:container/batch/b99d40b3/1", "exitCode": 3,
       "lastStatus": "STOPPED", "name": "app", "taskArn": "arn:aws:ecs:eu-west-1:111122223333:task/batch/b99d40b3"},
      {"lastStatus": "STOPPED", "name": "log-router", "reason": "OutOfMemoryError: Container killed"}
    ],
    "createdAt": "2026-12-03T09:59:40.211Z",
    "desiredStatus": "STOPPED",
    "group": "family:transform",
    "launchType": "FARGATE",
    "lastStatus": "STOPPED",
    "startedAt": "2026-12-03T09:59:55.102Z",
    "startedBy": "ecsrun/1f0c8a7e-2b3d-4c5e-8f90-123456789abc",
    "stopCode": "EssentialContainerExited",
    "stoppedAt": "2026-12-03T10:00:11.870Z",
    "stoppedReason": "Essential container in task exited",
    "taskArn": "arn:aws:ecs:eu-west-1:111122223333:task/batch/b99d40b3",
    "taskDefinitionArn": "arn:aws:ecs:eu-west-1:111122223333:task-definition/transform:4",
    "updatedAt": "2026-12-03T10:00:11.870Z",
    "cpu": "256",
    "memory": "512",
    "version": 5
  }
}"#;

#[test]
fn a_stopped_task_reads_as_a_snapshot_with_its_version() {
    let Ok(Body::Task(event)) = parse(STOPPED) else { panic!("{:?}", parse(STOPPED)) };
    assert_eq!(event.region, "eu-west-1");
    assert_eq!(event.updated_at, Some("2026-12-03T10:00:11.870Z".parse().unwrap()));
    let task = event.task;
    assert_eq!(task.task_arn, "arn:aws:ecs:eu-west-1:111122223333:task/batch/b99d40b3");
    assert_eq!(task.version, Some(5));
    assert!(task.is_stopped());
    assert_eq!(task.stop_code, Some("EssentialContainerExited".into()));
    assert_eq!(task.stopped_reason.as_deref(), Some("Essential container in task exited"));
    assert_eq!(task.capacity_provider.as_deref(), Some("FARGATE"), "the launch type when no capacity provider");
    assert_eq!(task.started_at, Some("2026-12-03T09:59:55.102Z".parse().unwrap()));
    assert_eq!((task.cpu.as_deref(), task.memory.as_deref()), (Some("256"), Some("512")));
    assert_eq!(task.containers.len(), 2);
    assert_eq!((task.containers[0].name.as_str(), task.containers[0].exit_code), ("app", Some(3)));
    assert_eq!(task.containers[1].exit_code, None);
    assert_eq!(task.containers[1].reason.as_deref(), Some("OutOfMemoryError: Container killed"));
    assert_eq!(task.started_for_namespace, None, "events carry no tags");
}

#[test]
fn a_task_that_failed_to_start_may_have_no_containers() {
    let mut event: serde_json::Value = serde_json::from_str(STOPPED).unwrap();
    let detail = event["detail"].as_object_mut().unwrap();
    detail.remove("containers");
    detail.remove("startedAt");
    detail.insert("stopCode".into(), "TaskFailedToStart".into());
    detail.insert("stoppedReason".into(), "CannotPullContainerError: pull image manifest has been retried".into());
    let Ok(Body::Task(parsed)) = parse(&event.to_string()) else { panic!() };
    assert!(parsed.task.containers.is_empty());
    assert_eq!(parsed.task.stop_code, Some("TaskFailedToStart".into()));
    assert_eq!(parsed.task.started_at, None);
    event["detail"]["containers"] = serde_json::json!([]);
    assert!(matches!(parse(&event.to_string()), Ok(Body::Task(parsed)) if parsed.task.containers.is_empty()));
}

#[test]
fn other_events_and_other_clients_tasks_are_foreign() {
    let mut event: serde_json::Value = serde_json::from_str(STOPPED).unwrap();
    event["detail"]["startedBy"] = "ecs-svc/1234567890".into();
    assert!(matches!(parse(&event.to_string()), Ok(Body::Foreign)), "a service's task");
    event["detail"].as_object_mut().unwrap().remove("startedBy");
    assert!(matches!(parse(&event.to_string()), Ok(Body::Foreign)), "a task nobody named");
    let mut event: serde_json::Value = serde_json::from_str(STOPPED).unwrap();
    event["detail-type"] = "ECS Container Instance State Change".into();
    assert!(matches!(parse(&event.to_string()), Ok(Body::Foreign)));
    event["detail-type"] = DETAIL_TYPE.into();
    event["source"] = "aws.batch".into();
    assert!(matches!(parse(&event.to_string()), Ok(Body::Foreign)));
}

#[test]
fn bodies_that_cannot_be_ordered_or_read_are_malformed() {
    let mut event: serde_json::Value = serde_json::from_str(STOPPED).unwrap();
    event["detail"].as_object_mut().unwrap().remove("version");
    assert!(parse(&event.to_string()).is_err(), "without a version an event cannot be ordered");
    assert!(parse("not json").is_err());
    assert!(parse(r#"{"Message": "an SNS envelope"}"#).is_err());
}

#[test]
fn an_unreadable_time_is_left_out() {
    let event = STOPPED.replace("2026-12-03T09:59:40.211Z", "yesterday");
    let Ok(Body::Task(parsed)) = parse(&event) else { panic!() };
    assert_eq!(parsed.task.created_at, None);
    assert!(parsed.task.stopped_at.is_some());
}

#[test]
fn a_queue_is_in_the_region_its_url_names() {
    let source = EventSource::new("https://sqs.eu-west-1.amazonaws.com/111122223333/ecsrun-events", None).unwrap();
    assert_eq!(source.region, "eu-west-1");
    let legacy = EventSource::new("https://us-east-2.queue.amazonaws.com/111122223333/q", Some("eu-west-1")).unwrap();
    assert_eq!(legacy.region, "us-east-2");
    let local = EventSource::new("http://127.0.0.1:5000/123456789012/ecsrun-events", Some("eu-west-1")).unwrap();
    assert_eq!(local.region, "eu-west-1", "an endpoint override is in the default region");
    assert!(EventSource::new("http://localhost:4566/000000000000/q", None).is_err());
}

#[test]
fn the_documented_rule_sends_what_the_consumer_reads() {
    let pattern: serde_json::Value =
        serde_json::from_str(include_str!("../../../../docs/task-events/rule-pattern.json")).unwrap();
    assert_eq!(pattern["source"], serde_json::json!([SOURCE]));
    assert_eq!(pattern["detail-type"], serde_json::json!([DETAIL_TYPE]));
    assert_eq!(pattern["detail"]["startedBy"], serde_json::json!([{ "prefix": STARTED_BY_PREFIX }]));
    assert!(crate::decide::started_by("uid").starts_with(STARTED_BY_PREFIX), "every task ecsrun starts matches");
    let controller: serde_json::Value =
        serde_json::from_str(include_str!("../../../../docs/task-events/controller-policy.json")).unwrap();
    let actions = &controller["Statement"][0]["Action"];
    for action in ["sqs:ReceiveMessage", "sqs:DeleteMessage"] {
        assert!(actions.as_array().unwrap().iter().any(|a| a == action), "{action}: {actions}");
    }
    for document in [
        include_str!("../../../../docs/task-events/queue-attributes.json"),
        include_str!("../../../../docs/task-events/queue-policy.json"),
        include_str!("../../../../docs/task-events/dlq-policy.json"),
        include_str!("../../../../docs/task-events/rule-targets.json"),
    ] {
        serde_json::from_str::<serde_json::Value>(document).unwrap();
    }
    let attributes: serde_json::Value =
        serde_json::from_str(include_str!("../../../../docs/task-events/queue-attributes.json")).unwrap();
    let visibility: u64 = attributes["VisibilityTimeout"].as_str().unwrap().parse().unwrap();
    assert_eq!(visibility, super::queue::VISIBILITY.as_secs(), "the queue's default is what the consumer asks");
}

//! The SQS adapter against aws-smithy-mocks: what each call sends and how answers and errors come back.

use aws_sdk_sqs::operation::delete_message_batch::DeleteMessageBatchOutput;
use aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput;
use aws_sdk_sqs::types::{BatchResultErrorEntry, DeleteMessageBatchResultEntry};
use aws_smithy_mocks::{mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

use super::*;

const URL: &str = "https://sqs.eu-west-1.amazonaws.com/111122223333/ecsrun-task-events";

fn queue(client: Client) -> (SqsQueue, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new().unwrap());
    (SqsQueue::new(client, URL.into(), metrics.clone()), metrics)
}

fn sqs_error(status: u16, code: &str) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    let body = format!(r#"{{"__type": "{code}", "message": "{code} happened"}}"#);
    let code = code.to_owned();
    move || {
        let mut response = HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body.clone()));
        response.headers_mut().insert("x-amzn-query-error", format!("{code};Sender"));
        response
    }
}

#[tokio::test]
async fn receive_long_polls_for_ten_messages_and_keeps_their_receipts() {
    let rule = mock!(Client::receive_message)
        .match_requests(|request| {
            request.queue_url() == Some(URL)
                && request.max_number_of_messages() == Some(10)
                && request.wait_time_seconds() == Some(20)
                && request.visibility_timeout() == Some(60)
        })
        .then_output(|| {
            ReceiveMessageOutput::builder()
                .messages(
                    aws_sdk_sqs::types::Message::builder().message_id("m1").receipt_handle("r1").body("{}").build(),
                )
                // No receipt: it cannot be deleted, so it is not handed on.
                .messages(aws_sdk_sqs::types::Message::builder().message_id("m2").body("{}").build())
                .build()
        });
    let (queue, metrics) = queue(mock_client!(aws_sdk_sqs, [&rule]));
    let messages = queue.receive(WAIT).await.unwrap();
    assert_eq!(messages, vec![Message { id: "m1".into(), receipt: "r1".into(), body: "{}".into() }]);
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(metrics.sqs_calls.with_label_values(&["ReceiveMessage", "ok"]).get(), 1);
}

#[tokio::test]
async fn delete_sends_every_receipt_in_one_batch_and_counts_what_sqs_confirmed() {
    let rule = mock!(Client::delete_message_batch)
        .match_requests(|request| {
            let receipts: Vec<&str> = request.entries().iter().map(|entry| entry.receipt_handle()).collect();
            request.queue_url() == Some(URL) && receipts == ["r1", "r2"]
        })
        .then_output(|| {
            DeleteMessageBatchOutput::builder()
                .successful(DeleteMessageBatchResultEntry::builder().id("0").build().unwrap())
                .failed(
                    BatchResultErrorEntry::builder()
                        .id("1")
                        .code("ReceiptHandleIsInvalid")
                        .sender_fault(true)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        });
    let (queue, _) = queue(mock_client!(aws_sdk_sqs, [&rule]));
    let messages: Vec<Message> = ["r1", "r2"]
        .iter()
        .map(|receipt| Message { id: String::new(), receipt: (*receipt).into(), body: String::new() })
        .collect();
    assert_eq!(queue.delete(&messages).await, Ok(1));
    assert_eq!(queue.delete(&[]).await, Ok(0), "nothing to delete is no call");
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn errors_are_told_apart_for_the_warning_and_the_metric() {
    for (code, label) in [
        ("AWS.SimpleQueueService.NonExistentQueue", "missing"),
        ("AccessDenied", "denied"),
        ("InternalError", "unavailable"),
    ] {
        let rule = mock!(Client::receive_message).then_http_response(sqs_error(400, code));
        let (queue, metrics) = queue(mock_client!(aws_sdk_sqs, [&rule]));
        let error = queue.receive(WAIT).await.unwrap_err();
        assert_eq!(error.label(), label, "{code}: {error}");
        assert_eq!(metrics.sqs_calls.with_label_values(&["ReceiveMessage", label]).get(), 1);
    }
}

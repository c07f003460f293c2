//! The queue task events arrive on, as a small port (receive, delete), and its adapter over aws-sdk-sqs:
//! long polls of up to 10 messages and 20 s, batch deletes, a metric and a log line for every call.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use tracing::{debug, warn};

use crate::metrics::Metrics;

/// Messages per ReceiveMessage (SQS's maximum).
pub const MAX_MESSAGES: i32 = 10;
/// ReceiveMessage's long poll (SQS's maximum): an idle queue costs 3 calls a minute.
pub const WAIT: Duration = Duration::from_secs(20);
/// How long a received message stays hidden from other receivers: far longer than applying a batch takes.
pub const VISIBILITY: Duration = Duration::from_secs(60);

/// One message received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    /// What deletes it.
    pub receipt: String,
    pub body: String,
}

/// Why the queue could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the queue does not exist: {0}")]
    Missing(String),
    #[error("access denied: {0}")]
    Denied(String),
    #[error("SQS unavailable: {0}")]
    Unavailable(String),
}

impl QueueError {
    /// A stable label for metrics and Events.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Missing(_) => "missing",
            Self::Denied(_) => "denied",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

/// A queue of task state change events.
pub trait EventQueue: Send + Sync + 'static {
    /// Where it is, for logs and Events.
    fn url(&self) -> &str;
    /// Up to `MAX_MESSAGES` messages, waiting at most `wait` (up to `WAIT`) for the first.
    fn receive(&self, wait: Duration) -> impl Future<Output = Result<Vec<Message>, QueueError>> + Send;
    /// Deletes handled messages; returns how many SQS confirmed (the rest come back after the
    /// visibility timeout, and are dropped then as stale).
    fn delete(&self, messages: &[Message]) -> impl Future<Output = Result<usize, QueueError>> + Send;
}

/// An SQS queue through aws-sdk-sqs.
pub struct SqsQueue {
    client: Client,
    url: String,
    metrics: Arc<Metrics>,
}

impl SqsQueue {
    pub fn new(client: Client, url: String, metrics: Arc<Metrics>) -> Self {
        Self { client, url, metrics }
    }

    /// A client for `region` with aws-config's default chain; `call_timeout` is added to the long poll.
    pub async fn client(region: &str, endpoint_url: Option<&str>, call_timeout: Duration) -> Client {
        // A receive waits up to WAIT for messages before its call time starts to count.
        let base = crate::ecs::aws::sdk_defaults(region, WAIT + call_timeout).await;
        let mut config = aws_sdk_sqs::config::Builder::from(&base);
        if let Some(url) = endpoint_url {
            config = config.endpoint_url(url);
        }
        Client::from_conf(config.build())
    }

    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, QueueError>>,
    ) -> Result<T, QueueError> {
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed();
        let outcome = result.as_ref().map_or_else(QueueError::label, |_| "ok");
        self.metrics.sqs_calls.with_label_values(&[operation, outcome]).inc();
        self.metrics.sqs_call_duration.with_label_values(&[operation]).observe(elapsed.as_secs_f64());
        match &result {
            Ok(_) => debug!(operation, queue = %self.url, elapsed_ms = elapsed.as_millis() as u64, "SQS call"),
            Err(error) => {
                warn!(operation, queue = %self.url, outcome, elapsed_ms = elapsed.as_millis() as u64, %error, "SQS call failed")
            }
        }
        result
    }
}

impl EventQueue for SqsQueue {
    fn url(&self) -> &str {
        &self.url
    }

    async fn receive(&self, wait: Duration) -> Result<Vec<Message>, QueueError> {
        let call = async {
            let output = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(MAX_MESSAGES)
                .wait_time_seconds(wait.min(WAIT).as_secs() as i32)
                .visibility_timeout(VISIBILITY.as_secs() as i32)
                .send()
                .await
                .map_err(classify)?;
            Ok(output
                .messages
                .unwrap_or_default()
                .into_iter()
                .filter_map(|message| {
                    Some(Message {
                        id: message.message_id.unwrap_or_default(),
                        receipt: message.receipt_handle?,
                        body: message.body.unwrap_or_default(),
                    })
                })
                .collect())
        };
        self.call("ReceiveMessage", call).await
    }

    async fn delete(&self, messages: &[Message]) -> Result<usize, QueueError> {
        if messages.is_empty() {
            return Ok(0);
        }
        let call = async {
            let mut request = self.client.delete_message_batch().queue_url(&self.url);
            for (index, message) in messages.iter().enumerate() {
                let entry = DeleteMessageBatchRequestEntry::builder()
                    .id(index.to_string())
                    .receipt_handle(&message.receipt)
                    .build()
                    .map_err(|error| QueueError::Unavailable(error.to_string()))?;
                request = request.entries(entry);
            }
            let output = request.send().await.map_err(classify)?;
            for failed in output.failed() {
                debug!(queue = %self.url, id = failed.id(), code = failed.code(), "message not deleted; it comes back and is dropped as stale");
            }
            Ok(output.successful().len())
        };
        self.call("DeleteMessageBatch", call).await
    }
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    error: SdkError<E, R>,
) -> QueueError {
    // The code and message (an Event's note): the whole error context carries the raw HTTP response.
    let message = match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => aws_smithy_types::error::display::DisplayErrorContext(&error).to_string(),
    };
    match error.code() {
        Some("AWS.SimpleQueueService.NonExistentQueue" | "QueueDoesNotExist") => QueueError::Missing(message),
        Some(
            "AccessDenied"
            | "AccessDeniedException"
            | "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "KMS.AccessDeniedException",
        ) => QueueError::Denied(message),
        _ => QueueError::Unavailable(message),
    }
}

#[cfg(test)]
mod tests;

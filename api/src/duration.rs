//! Durations as Kubernetes and Go spell them (`30s`, `5m`, `2h15m30s`, `500ms`), parsed once when an object
//! is read. A value that does not parse is kept as written and is an error wherever it is used: the CRD's
//! pattern refuses it at admission first, and a run that holds one anyway fails with reason InvalidSpec,
//! never reading it as "no limit".

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Whole units only; the pattern of every duration field's schema.
const DURATION_PATTERN: &str = r"^([0-9]+(h|m|s|ms))+$";

/// `wait.pollInterval` (and `--default-poll-interval`): at least this often...
pub const POLL_INTERVAL_MIN: Duration = Duration::from_secs(5);
/// ... and at most this: ECS forgets a stopped task about an hour after it stops, so a task must be seen
/// well within that.
pub const POLL_INTERVAL_MAX: Duration = Duration::from_secs(600);
/// `wait.timeout` (and an EcsRunPolicy's `limits.timeout`) is at least this.
pub const TIMEOUT_MIN: Duration = Duration::from_secs(1);
/// `wait.startTimeout` is at least this.
pub const START_TIMEOUT_MIN: Duration = Duration::from_secs(10);

/// The CEL rules that enforce the bounds above at admission (`bounds_and_rules_agree` ties them together).
pub const POLL_INTERVAL_RULE: &str = "duration(self) >= duration('5s') && duration(self) <= duration('10m')";
pub const TIMEOUT_RULE: &str = "duration(self) >= duration('1s')";
pub const START_TIMEOUT_RULE: &str = "duration(self) >= duration('10s')";

/// A duration field's value: the text as written, and what it means if it parses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoDuration {
    text: String,
    value: Option<Duration>,
}

/// A duration field held a value that is not a duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a duration such as 30s, 5m or 1h30m")]
pub struct InvalidDuration {
    pub text: String,
}

impl GoDuration {
    pub fn parse(text: &str) -> Self {
        let shaped = !text.is_empty()
            && text.chars().all(|c| c.is_ascii_digit() || matches!(c, 'h' | 'm' | 's'))
            && text.starts_with(|c: char| c.is_ascii_digit())
            && !text.ends_with(|c: char| c.is_ascii_digit());
        let value = shaped.then(|| humantime::parse_duration(text).ok()).flatten();
        Self { text: text.to_owned(), value }
    }

    pub fn get(&self) -> Result<Duration, InvalidDuration> {
        self.value.ok_or_else(|| InvalidDuration { text: self.text.clone() })
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Parses (specs built in code, test doubles).
impl From<&str> for GoDuration {
    fn from(text: &str) -> Self {
        Self::parse(text)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(deserializer)?))
    }
}

impl JsonSchema for GoDuration {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "GoDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "pattern": DURATION_PATTERN })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_go_style_and_anything_else_is_kept_as_an_error() {
        let rows = [
            ("seconds", "30s", Some(30_000)),
            ("minutes", "5m", Some(300_000)),
            ("hours, minutes and seconds", "2h15m30s", Some(8_130_000)),
            ("milliseconds", "500ms", Some(500)),
            ("a bare number", "30", None),
            ("a word", "soon", None),
            ("spaces", "1h 30m", None),
            ("a unit Go does not have here", "1d", None),
            ("empty", "", None),
        ];
        for (row, text, millis) in rows {
            let parsed = GoDuration::parse(text);
            assert_eq!(parsed.get().ok().map(|d| d.as_millis() as u64), millis, "{row}");
            assert_eq!(parsed.as_str(), text, "{row}: kept as written");
            assert_eq!(serde_json::to_value(&parsed).unwrap(), serde_json::json!(text), "{row}");
        }
        assert_eq!(
            GoDuration::parse("soon").get().unwrap_err().to_string(),
            "\"soon\" is not a duration such as 30s, 5m or 1h30m"
        );
    }

    #[test]
    fn bounds_and_rules_agree() {
        let literals = |rule: &str| -> Vec<Duration> {
            rule.split("duration('")
                .skip(1)
                .map(|rest| GoDuration::parse(rest.split('\'').next().unwrap()).get().unwrap())
                .collect()
        };
        assert_eq!(literals(POLL_INTERVAL_RULE), [POLL_INTERVAL_MIN, POLL_INTERVAL_MAX]);
        assert_eq!(literals(TIMEOUT_RULE), [TIMEOUT_MIN]);
        assert_eq!(literals(START_TIMEOUT_RULE), [START_TIMEOUT_MIN]);
    }
}

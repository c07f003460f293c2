//! Closed vocabularies spelled as strings on the wire (ECS's task states, a run's reasons): parsed once
//! where they come in, matched as enums everywhere else, and written back exactly as they were spelled.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A value from a closed set, spelled as a string (strum derives both directions).
pub trait Spelled: Copy + PartialEq + FromStr + Into<&'static str> + 'static {
    /// The value as it is spelled on the wire.
    fn spelling(self) -> &'static str {
        self.into()
    }
}

/// A value of a vocabulary: one ecsrun knows, or one it does not, kept as it was spelled and matched by
/// nothing (a state ECS adds later; for a run's reason, an error's reason while a call is held up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reported<T> {
    Known(T),
    Unknown(String),
}

impl<T: Spelled> Reported<T> {
    pub fn parse(value: &str) -> Self {
        value.parse().map_or_else(|_| Self::Unknown(value.to_owned()), Self::Known)
    }

    /// As it was spelled.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Known(known) => known.spelling(),
            Self::Unknown(value) => value,
        }
    }

    pub fn is(&self, value: T) -> bool {
        *self == Self::Known(value)
    }

    pub fn known(&self) -> Option<T> {
        match self {
            Self::Known(known) => Some(*known),
            Self::Unknown(_) => None,
        }
    }
}

impl<T: Spelled> From<T> for Reported<T> {
    fn from(value: T) -> Self {
        Self::Known(value)
    }
}

/// Parses a spelling (the adapter's answers, events, an error's reason, test doubles).
impl<T: Spelled> From<&str> for Reported<T> {
    fn from(value: &str) -> Self {
        Self::parse(value)
    }
}

impl<T: Spelled> fmt::Display for Reported<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// In the status as spelled: the CRD's schema is a string.
impl<T: Spelled> Serialize for Reported<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de, T: Spelled> Deserialize<'de> for Reported<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(deserializer)?))
    }
}

impl<T> JsonSchema for Reported<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        String::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        String::json_schema(generator)
    }
}

//! ECS's task states, parsed once where ECS's answers and events come in: decisions match on these types,
//! never on ECS's strings. A value ECS adds later is kept as ECS spelled it (`Reported::Unknown`), shown
//! to users as it came and matched by nothing. In a run's status they are the strings ECS wrote.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::StopCode;

/// A value ECS spells as a string, from a closed set ecsrun knows.
pub trait EcsValue: Copy + PartialEq + 'static {
    /// Every value, for parsing.
    const ALL: &'static [Self];
    /// The value as ECS spells it.
    fn as_ecs(self) -> &'static str;
}

/// What ECS reported: a value ecsrun knows, or one it does not (kept, never dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reported<T> {
    Known(T),
    Unknown(String),
}

impl<T: EcsValue> Reported<T> {
    pub fn parse(value: &str) -> Self {
        T::ALL
            .iter()
            .find(|known| known.as_ecs() == value)
            .map_or_else(|| Self::Unknown(value.to_owned()), |known| Self::Known(*known))
    }

    /// As ECS spelled it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Known(known) => known.as_ecs(),
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

impl<T: EcsValue> From<T> for Reported<T> {
    fn from(value: T) -> Self {
        Self::Known(value)
    }
}

/// Parses ECS's spelling (the adapter's answers, events, test doubles).
impl<T: EcsValue> From<&str> for Reported<T> {
    fn from(value: &str) -> Self {
        Self::parse(value)
    }
}

impl<T: EcsValue> fmt::Display for Reported<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// In the status as ECS spelled it: the CRD's schema is a string.
impl<T: EcsValue> Serialize for Reported<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de, T: EcsValue> Deserialize<'de> for Reported<T> {
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

/// A task's `lastStatus`: where it is in ECS's lifecycle, in order. A task only moves forward through it,
/// so of two looks at a task the one further along is the later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LastStatus {
    Provisioning,
    Pending,
    Activating,
    Running,
    Deactivating,
    Stopping,
    Deprovisioning,
    Stopped,
}

impl EcsValue for LastStatus {
    const ALL: &'static [Self] = &[
        LastStatus::Provisioning,
        LastStatus::Pending,
        LastStatus::Activating,
        LastStatus::Running,
        LastStatus::Deactivating,
        LastStatus::Stopping,
        LastStatus::Deprovisioning,
        LastStatus::Stopped,
    ];

    fn as_ecs(self) -> &'static str {
        match self {
            LastStatus::Provisioning => "PROVISIONING",
            LastStatus::Pending => "PENDING",
            LastStatus::Activating => "ACTIVATING",
            LastStatus::Running => "RUNNING",
            LastStatus::Deactivating => "DEACTIVATING",
            LastStatus::Stopping => "STOPPING",
            LastStatus::Deprovisioning => "DEPROVISIONING",
            LastStatus::Stopped => "STOPPED",
        }
    }
}

/// A task's `desiredStatus`, and which tasks ListTasks should return (its own default is RUNNING only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DesiredStatus {
    Running,
    Pending,
    Stopped,
}

impl EcsValue for DesiredStatus {
    const ALL: &'static [Self] = &[DesiredStatus::Running, DesiredStatus::Pending, DesiredStatus::Stopped];

    fn as_ecs(self) -> &'static str {
        match self {
            DesiredStatus::Running => "RUNNING",
            DesiredStatus::Pending => "PENDING",
            DesiredStatus::Stopped => "STOPPED",
        }
    }
}

impl EcsValue for StopCode {
    const ALL: &'static [Self] = &[
        StopCode::TaskFailedToStart,
        StopCode::EssentialContainerExited,
        StopCode::UserInitiated,
        StopCode::SpotInterruption,
        StopCode::TerminationNotice,
        StopCode::ServiceSchedulerInitiated,
    ];

    fn as_ecs(self) -> &'static str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecs_spellings_parse_to_what_they_name_and_unknown_ones_are_kept() {
        let rows: [(&str, Reported<LastStatus>); 3] = [
            ("RUNNING", Reported::Known(LastStatus::Running)),
            ("DEPROVISIONING", Reported::Known(LastStatus::Deprovisioning)),
            ("HIBERNATING", Reported::Unknown("HIBERNATING".into())),
        ];
        for (spelled, parsed) in rows {
            assert_eq!(Reported::parse(spelled), parsed, "{spelled}");
            assert_eq!(parsed.as_str(), spelled);
        }
        for code in StopCode::ALL {
            assert_eq!(Reported::<StopCode>::parse(code.as_str()), Reported::Known(*code));
        }
        assert_eq!(Reported::<StopCode>::parse("TaskFailedToStart").known(), Some(StopCode::TaskFailedToStart));
        assert_eq!(Reported::<StopCode>::parse("SomethingNew").known(), None);
        assert!(Reported::<DesiredStatus>::parse("STOPPED").is(DesiredStatus::Stopped));
    }
}

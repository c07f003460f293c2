//! ECS's task states, parsed once where ECS's answers and events come in: decisions match on these types,
//! never on ECS's strings. A value ECS adds later is kept as ECS spelled it (`Reported::Unknown`), shown
//! to users as it came and matched by nothing. In a run's status they are the strings ECS wrote.

use strum::{EnumString, IntoStaticStr, VariantArray};

use crate::{Spelled, StopCode};

/// A task's `lastStatus`: where it is in ECS's lifecycle, in order. A task only moves forward through it,
/// so of two looks at a task the one further along is the later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, EnumString, IntoStaticStr, VariantArray)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
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

impl Spelled for LastStatus {}

/// A task's `desiredStatus`, and which tasks ListTasks should return (its own default is RUNNING only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumString, IntoStaticStr, VariantArray)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum DesiredStatus {
    Running,
    Pending,
    Stopped,
}

impl Spelled for DesiredStatus {}

impl Spelled for StopCode {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reported;

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
        for code in StopCode::VARIANTS {
            assert_eq!(Reported::<StopCode>::parse(code.spelling()), Reported::Known(*code));
        }
        for status in LastStatus::VARIANTS {
            assert_eq!(Reported::<LastStatus>::parse(status.spelling()), Reported::Known(*status));
        }
        assert_eq!(Reported::<StopCode>::parse("TaskFailedToStart").known(), Some(StopCode::TaskFailedToStart));
        assert_eq!(Reported::<StopCode>::parse("SomethingNew").known(), None);
        assert!(Reported::<DesiredStatus>::parse("STOPPED").is(DesiredStatus::Stopped));
    }
}

//! ECS's free-text reasons, read here (the edge) so decisions ask questions of them instead of comparing
//! strings: whether a task that failed to start, or a RunTask that started nothing, may fare better later.

use super::{EcsFailure, TaskSnapshot};

impl TaskSnapshot {
    /// A TaskFailedToStart for a reason a later attempt can get past: capacity, ENI and pull timeouts,
    /// throttling. Markers are whole words, so "pull access denied" is not an ENI problem.
    pub fn failed_to_start_transiently(&self) -> bool {
        self.stopped_reason.as_deref().is_some_and(is_transient_start_failure)
    }
}

impl EcsFailure {
    /// RunTask found no capacity for the task (`RESOURCE:CPU`, `RESOURCE:MEMORY`, ... or no agent).
    pub fn is_capacity(&self) -> bool {
        self.reason.as_deref().is_some_and(|reason| reason.starts_with("RESOURCE:") || reason == "AGENT")
    }
}

fn is_transient_start_failure(stopped_reason: &str) -> bool {
    let reason = stopped_reason.to_lowercase();
    let words: Vec<&str> = reason.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect();
    let word = ["capacity", "timeout", "eni", "insufficientfreeaddresses", "throttling", "throttled"];
    let phrase = ["timed out", "resource:", "rate exceeded"];
    words.iter().any(|w| word.contains(w)) || phrase.iter().any(|p| reason.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_start_failures_are_told_by_whole_words() {
        let rows = [
            ("Timeout waiting for network interface provisioning to complete.", true),
            ("ENI allocation failed: InsufficientFreeAddressesInSubnet", true),
            ("RESOURCE:MEMORY", true),
            ("Fargate capacity is unavailable at this time", true),
            ("CannotPullContainerError: read tcp: i/o timeout", true),
            ("Rate exceeded", true),
            // "denied" contains "eni"; "ScenicPlatform" contains "eni" too: neither is about ENIs.
            ("CannotPullContainerError: pull access denied for app, repository does not exist", false),
            ("ResourceInitializationError: unable to retrieve secret from asm: AccessDeniedException", false),
            ("CannotStartContainerError: ScenicPlatform error", false),
            ("Essential container in task exited", false),
        ];
        for (stopped_reason, transient) in rows {
            let task = TaskSnapshot { stopped_reason: Some(stopped_reason.into()), ..TaskSnapshot::default() };
            assert_eq!(task.failed_to_start_transiently(), transient, "{stopped_reason}");
        }
    }

    #[test]
    fn runtask_failures_of_capacity_are_resource_or_agent() {
        let rows = [("RESOURCE:CPU", true), ("AGENT", true), ("ATTRIBUTE", false), ("MISSING", false)];
        for (reason, capacity) in rows {
            let failure = EcsFailure { reason: Some(reason.into()), ..EcsFailure::default() };
            assert_eq!(failure.is_capacity(), capacity, "{reason}");
        }
    }
}

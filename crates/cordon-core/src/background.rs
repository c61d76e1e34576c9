//! Scheduling classes for a process's background threads (Linux `SCHED_IDLE` and `SCHED_BATCH` with a nice value), so work no request waits for yields the CPU to work one does.

use std::cell::Cell;

/// How a background thread competes for CPU with the threads that answer requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Background {
    /// Runs only on CPU no other thread wants (e.g. a tenant's history search).
    Idle,
    /// Its share of CPU by `nice` (0 to 19), but it never preempts a woken
    /// thread: a request thread woken on its core runs first.
    Batch { nice: u8 },
}

thread_local! {
    static ENTERED: Cell<bool> = const { Cell::new(false) };
}

/// Moves the calling thread to `class`, the first time a thread asks (later
/// calls on the same thread change nothing). Linux only; elsewhere, or where
/// the system refuses, the thread keeps its priority.
pub fn enter(class: Background) {
    if ENTERED.replace(true) {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let (policy, priority) = match class {
            Background::Idle => (NormalThreadSchedulePolicy::Idle, ThreadPriority::Min),
            Background::Batch { nice } => (NormalThreadSchedulePolicy::Batch, of_nice(nice)),
        };
        let policy = ThreadSchedulePolicy::Normal(policy);
        if let Err(error) = set_thread_priority_and_policy(thread_native_id(), priority, policy) {
            tracing::debug!(?error, "could not change a thread's scheduling class");
        }
    }
}

/// The crate's 0-99 scale for `nice`: it maps `p` to nice `39 * (1 - p/99) - 20`, truncated.
#[cfg(target_os = "linux")]
fn of_nice(nice: u8) -> thread_priority::ThreadPriority {
    let nice = u32::from(nice.min(19));
    let value = u8::try_from(99 * (19 - nice) / 39).unwrap_or(0);
    value
        .try_into()
        .map_or(thread_priority::ThreadPriority::Min, |value| {
            thread_priority::ThreadPriority::Crossplatform(value)
        })
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The thread's nice value and policy, from `/proc/thread-self/stat`.
    fn nice_and_policy() -> (i64, i64) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
        // Fields after the command name, which is in parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let field = |n: usize| {
            fields
                .get(n - 3)
                .and_then(|f| f.parse().ok())
                .unwrap_or(-99)
        };
        (field(19), field(41))
    }

    #[test]
    fn a_thread_enters_its_class_once() {
        const SCHED_BATCH: i64 = 3;
        const SCHED_IDLE: i64 = 5;
        for (class, nice, policy) in [
            (Background::Batch { nice: 10 }, 10, SCHED_BATCH),
            (Background::Batch { nice: 19 }, 19, SCHED_BATCH),
            // Nice has no meaning under SCHED_IDLE; it is left at 0.
            (Background::Idle, 0, SCHED_IDLE),
        ] {
            let seen = std::thread::spawn(move || {
                enter(class);
                let entered = nice_and_policy();
                enter(Background::Idle);
                (entered, nice_and_policy())
            })
            .join()
            .unwrap_or_default();
            assert_eq!(seen.0, (nice, policy), "{class:?}");
            assert_eq!(seen.1, seen.0, "a second call changes nothing");
        }
    }
}

//! The built-in agents of the default pipeline.

mod assistant;
mod triage;

pub use assistant::AssistantAgent;
pub use triage::TriageAgent;

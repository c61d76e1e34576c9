//! `triage`: reads the request and notes what kind of help it needs, without calling the model.

use async_trait::async_trait;
use cordon_core::RunEventKind;

use crate::registry::{Agent, AgentContext, AgentInput, Conclusion, RunFailure};

pub struct TriageAgent;

#[async_trait]
impl Agent for TriageAgent {
    fn name(&self) -> &'static str {
        "triage"
    }

    async fn run(
        &self,
        cx: &AgentContext<'_>,
        input: &AgentInput,
    ) -> Result<Conclusion, RunFailure> {
        let words = input.message.split_whitespace().count();
        let kind = if input.message.chars().any(|c| c.is_ascii_digit()) {
            "a question that may need arithmetic"
        } else {
            "a question about the conversation so far"
        };
        let note = format!("Request of {words} word(s): {kind}; handing it to the assistant.");
        cx.events.emit(
            cx.ctx,
            RunEventKind::AgentThinking {
                agent: self.name().to_owned(),
                step: 1,
                text: note.clone(),
            },
        );
        Ok(Conclusion::Done(note))
    }
}

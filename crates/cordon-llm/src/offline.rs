//! The built-in offline model: deterministic, no network, plans with real tool calls.
//!
//! It reads the latest user message and plans one tool call: the `calculator`
//! when the message holds an arithmetic expression, otherwise `search_history`
//! over the user's own earlier messages. Once the tool result is in the
//! conversation it composes an answer from it. Each step can be slowed down by
//! a configured delay so the stream of events is visible (and timeouts and
//! cancellation can be exercised).

use std::time::Duration;

use async_trait::async_trait;
use cordon_core::text::truncate_chars;
use cordon_core::{
    LlmError, LlmObserver, LlmProvider, LlmRequest, LlmResponse, LlmTurn, ToolCall, Usage,
};
use serde_json::{Value, json};

pub const CALCULATOR: &str = "calculator";
pub const SEARCH_HISTORY: &str = "search_history";

/// The deterministic built-in model.
#[derive(Debug, Clone, Default)]
pub struct OfflineModel {
    step_delay: Duration,
}

impl OfflineModel {
    pub fn new(step_delay: Duration) -> Self {
        Self { step_delay }
    }
}

#[async_trait]
impl LlmProvider for OfflineModel {
    fn name(&self) -> &str {
        "offline"
    }

    async fn complete(
        &self,
        request: &LlmRequest,
        observer: &dyn LlmObserver,
    ) -> Result<LlmResponse, LlmError> {
        if !self.step_delay.is_zero() {
            tokio::time::sleep(self.step_delay).await;
        }
        let (question, results) = latest_exchange(&request.turns)
            .ok_or_else(|| LlmError::BadRequest("no user message in the conversation".into()))?;
        let has_tool = |name: &str| request.tools.iter().any(|t| t.name == name);
        let mut response = if !results.is_empty() {
            compose_answer(question, &results)
        } else if let Some(expression) = find_expression(question).filter(|_| has_tool(CALCULATOR))
        {
            plan_tool(
                CALCULATOR,
                json!({ "expression": expression }),
                format!(
                    "The message contains the expression `{expression}`; I will evaluate it with the calculator."
                ),
            )
        } else if has_tool(SEARCH_HISTORY) {
            let query = search_terms(question);
            plan_tool(
                SEARCH_HISTORY,
                json!({ "query": query }),
                format!(
                    "I will search your earlier messages for \"{query}\" to ground the answer."
                ),
            )
        } else {
            LlmResponse {
                text: format!("You said: {question}"),
                ..LlmResponse::default()
            }
        };
        if let Some(thinking) = &response.thinking {
            observer.on_thinking(thinking);
        }
        response.usage = Usage {
            input_tokens: count_tokens_in(request),
            output_tokens: count_tokens(&response.text)
                + response.thinking.as_deref().map_or(0, count_tokens),
        };
        Ok(response)
    }
}

/// A tool result in the conversation: tool name, content, whether it failed.
type ToolResult<'a> = (&'a str, &'a Value, bool);

/// The last user message and the tool results that came after it.
fn latest_exchange(turns: &[LlmTurn]) -> Option<(&str, Vec<ToolResult<'_>>)> {
    let start = turns
        .iter()
        .rposition(|turn| matches!(turn, LlmTurn::User(_)))?;
    let LlmTurn::User(question) = &turns[start] else {
        return None;
    };
    let results = turns[start..]
        .iter()
        .filter_map(|turn| match turn {
            LlmTurn::ToolResult {
                name,
                content,
                is_error,
                ..
            } => Some((name.as_str(), content, *is_error)),
            _ => None,
        })
        .collect();
    Some((question, results))
}

fn plan_tool(name: &str, arguments: Value, thinking: String) -> LlmResponse {
    LlmResponse {
        thinking: Some(thinking),
        tool_calls: vec![ToolCall {
            id: format!("call_{name}_1"),
            name: name.to_owned(),
            arguments,
        }],
        ..LlmResponse::default()
    }
}

fn compose_answer(question: &str, results: &[ToolResult<'_>]) -> LlmResponse {
    let parts: Vec<String> = results
        .iter()
        .map(|(name, content, is_error)| describe_result(name, content, *is_error))
        .collect();
    LlmResponse {
        thinking: Some(format!(
            "I have {} tool result(s) for \"{}\"; composing the answer.",
            results.len(),
            truncate_chars(question, 60)
        )),
        text: parts.join(" "),
        ..LlmResponse::default()
    }
}

fn describe_result(name: &str, content: &Value, is_error: bool) -> String {
    if is_error {
        return format!("The {name} tool failed: {}.", value_text(content));
    }
    match name {
        CALCULATOR => format!(
            "{} = {}.",
            content["expression"].as_str().unwrap_or("the expression"),
            value_text(&content["value"])
        ),
        SEARCH_HISTORY => describe_matches(content),
        _ => format!("The {name} tool returned {}.", value_text(content)),
    }
}

fn describe_matches(content: &Value) -> String {
    let query = content["query"].as_str().unwrap_or_default();
    let matches = content["matches"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    match matches.first() {
        None => format!("I found no earlier messages of yours mentioning \"{query}\"."),
        Some(latest) => format!(
            "I found {} earlier message(s) of yours mentioning \"{query}\"; the latest says: \"{}\".",
            matches.len(),
            truncate_chars(latest["content"].as_str().unwrap_or_default(), 120)
        ),
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The longest run of arithmetic characters holding a digit and an operator.
fn find_expression(text: &str) -> Option<String> {
    let is_arith = |c: char| c.is_ascii_digit() || "+-*/%^(). ".contains(c);
    text.split(|c: char| !is_arith(c))
        .map(str::trim)
        .filter(|run| run.chars().any(|c| c.is_ascii_digit()))
        .filter(|run| run.chars().skip(1).any(|c| "+-*/%^".contains(c)))
        .max_by_key(|run| run.len())
        .map(|run| run.trim_end_matches(['.', ' ']).to_owned())
}

/// Words that say what the user wants rather than what about; never worth searching for.
const FILLER_WORDS: &[&str] = &[
    "about", "remind", "tell", "what", "that", "this", "with", "have", "from", "please", "there",
    "which", "would", "could", "should", "where", "when", "your", "know",
];

/// The longest meaningful word: the part of a message worth searching for.
fn search_terms(text: &str) -> String {
    let mut words: Vec<&str> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 4)
        .filter(|w| !FILLER_WORDS.contains(&w.to_lowercase().as_str()))
        .collect();
    words.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    words
        .first()
        .map(|w| w.to_lowercase())
        .unwrap_or_else(|| truncate_chars(text.trim(), 40).to_lowercase())
}

fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn count_tokens_in(request: &LlmRequest) -> u64 {
    let turns: u64 = request
        .turns
        .iter()
        .map(|turn| match turn {
            LlmTurn::User(text) => count_tokens(text),
            LlmTurn::Assistant { text, .. } => count_tokens(text),
            LlmTurn::ToolResult { content, .. } => count_tokens(&content.to_string()),
        })
        .sum();
    turns + count_tokens(&request.system)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cordon_core::{IgnoreStream, ToolSpec};

    fn request(turns: Vec<LlmTurn>) -> LlmRequest {
        let tool = |name: &str| ToolSpec {
            name: name.into(),
            description: String::new(),
            parameters: json!({}),
        };
        LlmRequest {
            system: String::new(),
            turns,
            tools: vec![tool(CALCULATOR), tool(SEARCH_HISTORY)],
        }
    }

    #[tokio::test]
    async fn arithmetic_goes_to_the_calculator_then_to_an_answer() {
        let model = OfflineModel::default();
        let mut turns = vec![LlmTurn::User("What is (2 + 3) * 4?".into())];
        let first = model
            .complete(&request(turns.clone()), &IgnoreStream)
            .await
            .unwrap();
        assert_eq!(first.tool_calls.len(), 1);
        assert_eq!(first.tool_calls[0].name, CALCULATOR);
        assert_eq!(first.tool_calls[0].arguments["expression"], "(2 + 3) * 4");
        assert!(first.thinking.is_some());

        turns.push(LlmTurn::ToolResult {
            call_id: first.tool_calls[0].id.clone(),
            name: CALCULATOR.into(),
            content: json!({"expression": "(2 + 3) * 4", "value": 20}),
            is_error: false,
        });
        let second = model
            .complete(&request(turns), &IgnoreStream)
            .await
            .unwrap();
        assert!(second.tool_calls.is_empty());
        assert_eq!(second.text, "(2 + 3) * 4 = 20.");
    }

    #[tokio::test]
    async fn prose_goes_to_history_search() {
        let model = OfflineModel::default();
        let turns = vec![LlmTurn::User("Remind me about the garden plans".into())];
        let first = model
            .complete(&request(turns), &IgnoreStream)
            .await
            .unwrap();
        assert_eq!(first.tool_calls[0].name, SEARCH_HISTORY);
        assert_eq!(first.tool_calls[0].arguments["query"], "garden");
    }

    #[test]
    fn expressions_are_found_in_prose() {
        assert_eq!(
            find_expression("compute 12*7 please").as_deref(),
            Some("12*7")
        );
        assert_eq!(find_expression("version 2 of the plan"), None);
        assert_eq!(find_expression("-3 + 4.5.").as_deref(), Some("-3 + 4.5"));
    }
}

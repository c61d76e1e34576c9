//! `search_history`: finds the calling user's own earlier messages that mention a query.

use async_trait::async_trait;
use cordon_core::{StoreError, Tool, ToolContext, ToolError};
use serde_json::{Value, json};

const DEFAULT_LIMIT: u32 = 5;
const MAX_LIMIT: u32 = 20;
/// A query is a word or a phrase: 3 to 200 characters (the index matches
/// substrings of 3 or more; longer queries only cost, they find nothing more).
const QUERY_CHARS: std::ops::RangeInclusive<usize> = 3..=200;

pub struct SearchHistory;

#[async_trait]
impl Tool for SearchHistory {
    fn name(&self) -> &str {
        "search_history"
    }

    fn description(&self) -> &str {
        "Searches the user's own earlier messages (all threads) for a word or phrase."
    }

    fn parameters_schema(&self) -> Value {
        json!({
            "type": "object",
            "properties": {
                "query": { "type": "string", "minLength": 3, "maxLength": 200, "description": "word or phrase to look for" },
                "limit": { "type": "integer", "minimum": 1, "maximum": MAX_LIMIT }
            },
            "required": ["query"],
            "additionalProperties": false
        })
    }

    async fn call(&self, cx: &ToolContext, arguments: Value) -> Result<Value, ToolError> {
        let query = arguments["query"]
            .as_str()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .filter(|q| QUERY_CHARS.contains(&q.chars().count()))
            .ok_or_else(|| {
                ToolError::InvalidArguments(
                    "`query` must be a string of 3 to 200 characters".into(),
                )
            })?;
        let limit = arguments["limit"]
            .as_u64()
            .map_or(DEFAULT_LIMIT, |n| n.clamp(1, u64::from(MAX_LIMIT)) as u32);
        // The user is taken from the context, never from the arguments: the
        // model cannot ask for someone else's history.
        let found = cx.store.search_messages(query, limit + 1).await.map_err(
            |error| match error {
                StoreError::OverBudget { budget } => ToolError::Failed(format!(
                    "the search was stopped after {} ms; try a shorter or more distinctive query",
                    budget.as_millis()
                )),
                _ => ToolError::Failed("the message history is unavailable".into()),
            },
        )?;
        let matches: Vec<Value> = found
            .into_iter()
            .filter(|m| m.run_id.as_ref() != Some(cx.ctx.root_run_id()))
            .take(limit as usize)
            .map(|m| {
                json!({
                    "thread_id": m.thread_id,
                    "role": m.role,
                    "content": m.content,
                })
            })
            .collect();
        Ok(json!({ "query": query, "matches": matches }))
    }
}

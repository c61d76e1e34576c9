//! `ToolDispatcher`: looks up a tool by name, runs it in the caller's context and reports it as events.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use cordon_core::{RunEventKind, Tool, ToolCall, ToolContext, ToolError, ToolSpec, UserTools};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::log::RunEvents;

/// The tools agents can call: the built-ins, fixed at start-up, and each
/// tool server's, replaced whenever that server's list changes. A run sees
/// the list as it was when the run asked for it; a call finds the tool as
/// it is now (or gets an unknown-tool error the model sees).
#[derive(Default)]
pub struct ToolDispatcher {
    builtin: Vec<Arc<dyn Tool>>,
    servers: Mutex<BTreeMap<String, Vec<Arc<dyn Tool>>>>,
    catalog: RwLock<Arc<Catalog>>,
    /// Per-user tool servers, asked for the calling user's tools each time.
    per_user: RwLock<Vec<Arc<dyn UserTools>>>,
}

/// Every tool by name, and their descriptions for the model.
#[derive(Default)]
struct Catalog {
    by_name: BTreeMap<String, Arc<dyn Tool>>,
    specs: Vec<ToolSpec>,
}

impl Catalog {
    fn of<'a>(tools: impl Iterator<Item = &'a Arc<dyn Tool>>) -> Self {
        let mut by_name = BTreeMap::new();
        for tool in tools {
            // First come first kept: a built-in is never shadowed.
            by_name
                .entry(tool.name().to_owned())
                .or_insert_with(|| Arc::clone(tool));
        }
        let specs = by_name
            .values()
            .map(|tool| spec_of(tool.as_ref()))
            .collect();
        Self { by_name, specs }
    }
}

fn spec_of(tool: &dyn Tool) -> ToolSpec {
    ToolSpec {
        name: tool.name().to_owned(),
        description: tool.description().to_owned(),
        parameters: tool.parameters_schema(),
    }
}

/// What a tool call produced, ready to hand back to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutcome {
    pub result: Value,
    pub is_error: bool,
}

impl ToolDispatcher {
    pub fn new(builtin: Vec<Arc<dyn Tool>>) -> Self {
        let catalog = Catalog::of(builtin.iter());
        Self {
            builtin,
            servers: Mutex::default(),
            catalog: RwLock::new(Arc::new(catalog)),
            per_user: RwLock::default(),
        }
    }

    /// The built-in tools: `calculator` and `search_history`.
    pub fn builtin() -> Self {
        Self::new(vec![
            Arc::new(crate::tools::Calculator),
            Arc::new(crate::tools::SearchHistory),
        ])
    }

    /// Replaces the tools a server offers (none: it offers nothing now).
    pub fn set_server_tools(&self, server: &str, tools: Vec<Arc<dyn Tool>>) {
        let mut servers = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        if tools.is_empty() {
            servers.remove(server);
        } else {
            servers.insert(server.to_owned(), tools);
        }
        let catalog = Catalog::of(self.builtin.iter().chain(servers.values().flatten()));
        // Under the servers lock, so two updates cannot land out of order.
        *self.catalog.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(catalog);
    }

    fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(&self.catalog.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Adds a source of per-user tools (a per-user tool server).
    pub fn add_user_tools(&self, source: Arc<dyn UserTools>) {
        self.per_user
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(source);
    }

    fn user_sources(&self) -> Vec<Arc<dyn UserTools>> {
        self.per_user
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Descriptions of every tool the user of `cx` may call: the shared ones
    /// and their own per-user servers' (a shared name wins).
    pub async fn specs_for(&self, cx: &ToolContext) -> Vec<ToolSpec> {
        let catalog = self.catalog();
        let mut specs = catalog.specs.clone();
        for source in self.user_sources() {
            let tools = source.tools_for(cx).await;
            let own = tools
                .iter()
                .filter(|tool| !catalog.by_name.contains_key(tool.name()));
            specs.extend(own.map(|tool| spec_of(tool.as_ref())));
        }
        specs
    }

    /// The tool `name` as the user of `cx` may call it.
    async fn find(&self, cx: &ToolContext, name: &str) -> Option<Arc<dyn Tool>> {
        if let Some(tool) = self.catalog().by_name.get(name) {
            return Some(Arc::clone(tool));
        }
        for source in self.user_sources() {
            let tools = source.tools_for(cx).await;
            if let Some(tool) = tools.into_iter().find(|tool| tool.name() == name) {
                return Some(tool);
            }
        }
        None
    }

    /// Runs one call, emitting `tool_executing` before and `tool_completed` after.
    /// A failing or unknown tool is reported to the model as an error result, not a run failure.
    pub async fn dispatch(
        &self,
        cx: &ToolContext,
        events: &RunEvents,
        agent: &str,
        call: &ToolCall,
    ) -> ToolOutcome {
        events.room().await;
        events.emit(
            &cx.ctx,
            RunEventKind::ToolExecuting {
                agent: agent.to_owned(),
                call_id: call.id.clone(),
                tool: call.name.clone(),
                arguments: call.arguments.clone(),
            },
        );
        let started = Instant::now();
        let span = crate::trace::execute_tool(&cx.ctx, call);
        let outcome = match self.run(cx, call).instrument(span.clone()).await {
            Ok(result) => ToolOutcome {
                result,
                is_error: false,
            },
            Err(error) => ToolOutcome {
                result: json!({ "error": error.to_string() }),
                is_error: true,
            },
        };
        crate::trace::record_tool(&span, &outcome.result, outcome.is_error);
        events.emit(
            &cx.ctx,
            RunEventKind::ToolCompleted {
                agent: agent.to_owned(),
                call_id: call.id.clone(),
                tool: call.name.clone(),
                result: outcome.result.clone(),
                is_error: outcome.is_error,
                duration_ms: elapsed_ms(started),
            },
        );
        outcome
    }

    async fn run(&self, cx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
        let tool = self
            .find(cx, &call.name)
            .await
            .ok_or_else(|| ToolError::Unknown(call.name.clone()))?;
        tool.call(cx, call.arguments.clone()).await
    }
}

/// Milliseconds since `started`, saturating.
pub fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

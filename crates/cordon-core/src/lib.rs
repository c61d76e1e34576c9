//! cordon-core: the vocabulary every other crate speaks.
//!
//! It owns the identifiers (`UserId`, `ThreadId`, `RunId`, ...), the immutable
//! [`UserExecutionContext`] that scopes every piece of work to one user, the
//! domain records (threads, messages, runs), the run events an engine emits,
//! and the port traits adapters implement: [`LlmProvider`], [`Store`],
//! [`EventSink`], [`EventEncoder`] and [`Tool`], and
//! [`UserStore`], the store bound to one user that work runs with. It does no I/O and knows nothing of HTTP,
//! WebSocket frames or SQL (its one system call
//! sets a background thread's own scheduling class, [`background`]).

pub mod analytics;
pub mod background;
pub mod budget;
pub mod context;
pub mod event;
pub mod ids;
pub mod llm;
pub mod model;
pub mod secret;
pub mod sink;
pub mod store;
pub mod text;
pub mod tool;
pub mod trace;
pub mod user_store;

pub use analytics::{AnalyticsSink, FinishedRun, ModelCall};
pub use budget::{BudgetKind, BudgetLimits, BudgetPeriod, Clock, PeriodLimits, Spend, SystemClock};
pub use context::{ContextError, UserExecutionContext};
pub use event::{Decision, ErrorCode, RunEvent, RunEventKind};
pub use ids::{ConnectionId, IdError, MessageId, RequestId, RunId, ThreadId, UserId};
pub use llm::{
    IgnoreStream, LlmError, LlmObserver, LlmProvider, LlmRequest, LlmResponse, LlmTurn, ToolCall,
    ToolSpec, Usage,
};
pub use model::{Message, Multitask, Role, RunRecord, RunStatus, Thread, User};
pub use secret::{SecretName, SecretValue, is_secret_name};
pub use sink::{EventEncoder, EventSink, EventSinks};
pub use store::{
    Committed, LlmCallRecord, LogBounds, MessagePage, ModelUsage, RunFilter, RunOutcome, RunPause,
    Store, StoreError, StoredEvent, UsageTotals,
};
pub use tool::{Tool, ToolContext, ToolError, UserTools};
pub use trace::{TraceParent, TraceParentError};
pub use user_store::UserStore;

/// Largest message `content` a user may send, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024;

/// Current UTC time; the one clock every record and event is stamped with.
pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

//! `UserExecutionContext`: the immutable, validated identity every unit of work runs under.

use crate::ids::{ConnectionId, IdError, RequestId, RunId, ThreadId, UserId};
use crate::trace::TraceParent;

/// Why a context could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("invalid context: {0}")]
    InvalidId(#[from] IdError),
    #[error("invalid context: a child context needs its own run id, distinct from its parent's")]
    ChildReusesParentRun,
}

/// Who a piece of work belongs to and where it came from.
///
/// Built once per request from already-validated ids and never mutated: the
/// engine, the tools and the store read the user from here, so a handler
/// cannot accidentally act for another user. Sub-agents get a child context
/// that keeps the user and thread and adds its own run id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserExecutionContext {
    user_id: UserId,
    thread_id: ThreadId,
    run_id: RunId,
    request_id: RequestId,
    connection_id: Option<ConnectionId>,
    parent_run_id: Option<RunId>,
    root_run_id: RunId,
    /// The caller's trace context (W3C `traceparent` of the request or of
    /// its socket's upgrade): the parent of the run's span when traces are exported.
    trace_parent: Option<TraceParent>,
}

impl UserExecutionContext {
    /// A root context from typed ids (already validated by their constructors).
    pub fn new(
        user_id: UserId,
        thread_id: ThreadId,
        run_id: RunId,
        request_id: RequestId,
        connection_id: Option<ConnectionId>,
    ) -> Self {
        Self {
            user_id,
            thread_id,
            root_run_id: run_id.clone(),
            run_id,
            request_id,
            connection_id,
            parent_run_id: None,
            trace_parent: None,
        }
    }

    /// The same context, its run's span a child of the caller's `parent`.
    #[must_use]
    pub fn with_trace_parent(mut self, parent: Option<TraceParent>) -> Self {
        self.trace_parent = parent;
        self
    }

    /// A root context from raw strings, validating each id (empty and
    /// placeholder ids such as "default" or "anonymous" are refused).
    pub fn from_raw(
        user_id: &str,
        thread_id: &str,
        run_id: &str,
        request_id: &str,
        connection_id: Option<&str>,
    ) -> Result<Self, ContextError> {
        Ok(Self::new(
            UserId::parse(user_id)?,
            ThreadId::parse(thread_id)?,
            RunId::parse(run_id)?,
            RequestId::parse(request_id)?,
            connection_id.map(ConnectionId::parse).transpose()?,
        ))
    }

    /// A context for a sub-agent: same user, thread, request and connection,
    /// its own run id, and a link back to the parent run.
    pub fn child(&self, child_run_id: RunId) -> Result<Self, ContextError> {
        if child_run_id == self.run_id {
            return Err(ContextError::ChildReusesParentRun);
        }
        Ok(Self {
            run_id: child_run_id,
            parent_run_id: Some(self.run_id.clone()),
            ..self.clone()
        })
    }

    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }
    pub fn thread_id(&self) -> &ThreadId {
        &self.thread_id
    }
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }
    pub fn request_id(&self) -> &RequestId {
        &self.request_id
    }
    pub fn connection_id(&self) -> Option<&ConnectionId> {
        self.connection_id.as_ref()
    }
    pub fn parent_run_id(&self) -> Option<&RunId> {
        self.parent_run_id.as_ref()
    }
    pub fn trace_parent(&self) -> Option<&TraceParent> {
        self.trace_parent.as_ref()
    }
    /// The run the user asked for; events of sub-agents are reported under it.
    pub fn root_run_id(&self) -> &RunId {
        &self.root_run_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> UserExecutionContext {
        UserExecutionContext::from_raw("u-1", "t-1", "r-1", "q-1", Some("c-1")).unwrap()
    }

    #[test]
    fn raw_constructor_validates_every_id() {
        assert!(UserExecutionContext::from_raw("", "t", "r", "q", None).is_err());
        assert!(UserExecutionContext::from_raw("u", "default", "r", "q", None).is_err());
        assert!(UserExecutionContext::from_raw("u", "t", "none", "q", None).is_err());
        assert!(UserExecutionContext::from_raw("u", "t", "r", "test", None).is_err());
        assert!(UserExecutionContext::from_raw("anonymous", "t", "r", "q", None).is_err());
        assert!(UserExecutionContext::from_raw("u", "t", "r", "q", Some("")).is_err());
        let ctx = root();
        assert_eq!(ctx.user_id().as_str(), "u-1");
        assert_eq!(ctx.connection_id().map(|c| c.as_str()), Some("c-1"));
        assert_eq!(ctx.parent_run_id(), None);
    }

    #[test]
    fn child_keeps_user_and_adds_its_own_run() {
        let parent = root();
        let child = parent.child(RunId::parse("r-2").unwrap()).unwrap();
        assert_eq!(child.user_id(), parent.user_id());
        assert_eq!(child.thread_id(), parent.thread_id());
        assert_eq!(child.run_id().as_str(), "r-2");
        assert_eq!(child.parent_run_id(), Some(parent.run_id()));
        let grandchild = child.child(RunId::parse("r-3").unwrap()).unwrap();
        assert_eq!(grandchild.parent_run_id(), Some(child.run_id()));
        assert_eq!(grandchild.root_run_id(), parent.run_id());
    }

    #[test]
    fn child_must_not_reuse_parent_run() {
        let parent = root();
        assert_eq!(
            parent.child(parent.run_id().clone()),
            Err(ContextError::ChildReusesParentRun)
        );
    }
}

// DOM building for the chat. Untrusted text (users, model, tools) only ever becomes text nodes, never parsed markup.

/** `el("div.a.b", {attrs}, ...children)`: children are nodes or strings (text nodes). */
export function el(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const node = document.createElement(tag);
  if (classes.length) node.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/**
 * A tiny, safe Markdown subset as DOM nodes: ``` fenced code blocks, `inline code`
 * and paragraphs. Everything else is literal text.
 */
export function renderMarkdown(target, text) {
  target.replaceChildren();
  const parts = String(text).split(/```/);
  parts.forEach((part, index) => {
    if (index % 2 === 1) {
      const body = part.replace(/^[\w+-]*\n/, "");
      target.append(el("pre.code", {}, el("code", { text: body.replace(/\n$/, "") })));
      return;
    }
    for (const paragraph of part.split(/\n{2,}/)) {
      if (paragraph.trim()) target.append(renderInline(el("p"), paragraph));
    }
  });
}

/** Text with `inline code` spans, appended to `target` as nodes. */
export function renderInline(target, text) {
  String(text)
    .split(/(`[^`\n]+`)/)
    .forEach((piece) => {
      if (piece.length > 2 && piece.startsWith("`") && piece.endsWith("`")) {
        target.append(el("code", { text: piece.slice(1, -1) }));
      } else if (piece) {
        target.append(document.createTextNode(piece));
      }
    });
  return target;
}

/** JSON for display: compact when short, indented when long. */
export function formatJson(value) {
  const compact = JSON.stringify(value);
  if (compact === undefined) return "";
  return compact.length <= 80 ? compact : JSON.stringify(value, null, 2);
}

/** One run: the user's message, the timeline of steps and tool calls, then the answer or the error. */
/** What a run's summary says for each status (anything else failed). */
const STATUS_LABELS = {
  queued: "Queued: waits for the run before it",
  running: "Working…",
  waiting_approval: "Waiting for your approval",
  completed: "Done",
  cancelled: "Cancelled",
  interrupted: "Interrupted",
};

export class RunView {
  constructor(run) {
    this.run = run;
    this.calls = new Map();
    this.approvals = new Map();
    this.steps = 0;
    this.tools = 0;
    this.user = el("div.bubble.user", {});
    this.userRow = el("div.row.user-row", {}, el("span.visually-hidden", { text: "You said:" }), this.user);
    this.summary = el("summary", {});
    this.list = el("ol.steps", {});
    this.timeline = el("details.timeline", {}, this.summary, this.list);
    this.answer = el("div.answer", { "aria-live": "polite", "aria-atomic": "false" });
    this.error = el("div.run-error", { role: "alert", hidden: true });
    this.reply = el(
      "div.bubble.assistant",
      {},
      el("span.visually-hidden", { text: "cordon answered:" }),
      this.timeline,
      this.answer,
      this.error,
    );
    this.root = el("article.turn", { "data-status": "running" }, this.userRow, this.reply);
    this.streamed = "";
    this.setUserText(run.userText);
    this.updateSummary();
  }

  setUserText(text) {
    this.userRow.hidden = !text;
    this.user.textContent = text || "";
  }

  setRunId(runId) {
    this.root.dataset.runId = runId;
  }

  setStatus(status) {
    this.root.dataset.status = status;
    this.answer.setAttribute("aria-busy", status === "running" ? "true" : "false");
    this.updateSummary();
  }

  updateSummary() {
    const status = this.root.dataset.status;
    const label = STATUS_LABELS[status] || "Failed";
    const bits = [label];
    if (this.steps) bits.push(`${this.steps} step${this.steps === 1 ? "" : "s"}`);
    if (this.tools) bits.push(`${this.tools} tool call${this.tools === 1 ? "" : "s"}`);
    this.summary.textContent = bits.join(" · ");
    this.timeline.hidden = status !== "running" && status !== "queued" && !this.steps && !this.tools;
  }

  /** Applies one run event (in seq order). */
  apply(event) {
    switch (event.type) {
      case "run_queued":
        this.setStatus("queued");
        break;
      case "agent_started":
        this.setStatus("running");
        break;
      case "agent_thinking":
        this.steps += 1;
        this.list.append(
          el("li.step.thinking", {}, el("span.agent", { text: event.agent }), renderInline(el("span.text"), event.text)),
        );
        break;
      case "tool_executing": {
        this.tools += 1;
        const result = el("div.tool-result", { hidden: true });
        const item = el(
          "li.step.tool",
          { "data-call-id": event.call_id, "data-state": "running" },
          el(
            "div.tool-head",
            {},
            el("span.agent", { text: event.agent }),
            el("span.tool-name", { text: event.tool }),
            el("span.tool-state", { text: "running…" }),
          ),
          el("pre.tool-args", { text: formatJson(event.arguments) }),
          result,
        );
        this.calls.set(event.call_id, item);
        this.list.append(item);
        break;
      }
      case "tool_completed": {
        const item = this.calls.get(event.call_id);
        if (!item) break;
        item.dataset.state = event.is_error ? "error" : "done";
        item.querySelector(".tool-state").textContent = `${event.is_error ? "failed" : "done"} in ${event.duration_ms} ms`;
        const result = item.querySelector(".tool-result");
        result.hidden = false;
        result.replaceChildren(el("span.label", { text: "result" }), el("pre", { text: formatJson(event.result) }));
        break;
      }
      case "approval_required": {
        const answers = el(
          "div.approval-actions",
          {},
          el("button.primary", { type: "button", "data-decision": "approve", "data-call-id": event.call_id, "data-run-id": event.run_id, text: "Approve" }),
          el("button.danger", { type: "button", "data-decision": "reject", "data-call-id": event.call_id, "data-run-id": event.run_id, text: "Reject" }),
        );
        const item = el(
          "li.step.approval",
          { "data-call-id": event.call_id, "data-state": "waiting" },
          el(
            "div.tool-head",
            {},
            el("span.agent", { text: event.agent }),
            el("span.tool-name", { text: event.tool }),
            el("span.tool-state", { text: "needs your approval" }),
          ),
          el("pre.tool-args", { text: formatJson(event.arguments) }),
          answers,
        );
        this.approvals.set(event.call_id, item);
        this.list.append(item);
        this.timeline.open = true;
        this.setStatus("waiting_approval");
        break;
      }
      case "approval_resolved": {
        const item = this.approvals.get(event.call_id);
        if (item) {
          item.dataset.state = event.decision;
          const why = event.reason ? `: ${event.reason}` : "";
          item.querySelector(".tool-state").textContent = `${event.decision}${why}`;
          item.querySelector(".approval-actions")?.remove();
        }
        const waiting = [...this.approvals.values()].some((i) => i.dataset.state === "waiting");
        if (!waiting) this.setStatus("running");
        break;
      }
      case "agent_delta":
        this.streamed += event.text || "";
        this.answer.textContent = this.streamed;
        break;
      case "agent_completed":
        this.setAnswer(event.answer);
        this.setStatus("completed");
        break;
      case "agent_error":
        this.error.hidden = false;
        this.error.replaceChildren(el("strong.code", { text: event.code }), " ", el("span", { text: event.message }));
        this.setStatus(event.code === "cancelled" || event.code === "interrupted" ? event.code : "error");
        break;
      default:
        return;
    }
    this.updateSummary();
  }

  setAnswer(text) {
    this.streamed = text;
    renderMarkdown(this.answer, text);
  }
}

// The cordon web chat: sign-in, the thread sidebar, live runs over /ws resumed from the last seq seen, double texting, and resync from the REST API.

import {
  ApiError,
  SESSION_KEY,
  authenticate,
  clearSession,
  getBudget,
  listMessages,
  listRunEvents,
  listThreads,
  loadSession,
  logout,
  saveSession,
  sessionExpired,
} from "./api.js";
import { ChatSocket } from "./socket.js";
import { RunView, el } from "./render.js";

const $ = (id) => document.getElementById(id);

const ui = {
  authView: $("auth-view"),
  authForm: $("auth-form"),
  authUsername: $("auth-username"),
  authPassword: $("auth-password"),
  authError: $("auth-error"),
  chatView: $("chat-view"),
  conn: $("conn"),
  connLabel: $("conn-label"),
  whoami: $("whoami"),
  signOut: $("sign-out"),
  toggleSidebar: $("toggle-sidebar"),
  newChat: $("new-chat"),
  threadList: $("thread-list"),
  noThreads: $("no-threads"),
  threadTitle: $("thread-title"),
  messages: $("messages"),
  empty: $("empty"),
  notice: $("notice"),
  composer: $("composer"),
  message: $("message"),
  send: $("send"),
  stop: $("stop"),
  multitask: $("multitask"),
  budget: $("budget"),
};

const EXPIRED = "Your session expired. Please sign in again.";
const SIGNED_OUT_ELSEWHERE = "You were signed out (on another device or tab). Please sign in again.";
const LOGOUT_UNREACHED =
  "Signed out here, but cordon could not be reached to end the session on your other devices.";

/** Why the server refused the token (401): ended by a sign-out, or no longer valid. */
function refusedMessage(error) {
  return error.code === "signed_out" ? SIGNED_OUT_ELSEWHERE : EXPIRED;
}
/** The event-log cursor lives per tab (sessionStorage) and per user. */
function cursorKey() {
  return `cordon.cursor.${state.session.user.id || state.session.user.username}`;
}

function loadCursor() {
  const value = Number(sessionStorage.getItem(cursorKey()));
  return Number.isSafeInteger(value) && value > 0 ? value : 0;
}

function advanceCursor(seq) {
  if (!(seq > state.cursor)) return;
  state.cursor = seq;
  sessionStorage.setItem(cursorKey(), String(seq));
}

const CONNECTION_LABELS = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

const state = {
  session: null,
  socket: null,
  threads: [],
  currentThreadId: null,
  /** run_id → { id, threadId, seen: Set<seq>, lastSeq, events: [], view: RunView } */
  runs: new Map(),
  /** Messages sent from this tab that wait for their run's first event: { threadId, clientRequestId, view }. */
  pending: [],
  /** The highest log `seq` seen; kept in sessionStorage so a reload resumes right after it. */
  cursor: 0,
  sent: 0,
  awaitingThread: false,
  loadGeneration: 0,
};

// ---------- session ----------

function showAuth(message) {
  ui.chatView.hidden = true;
  ui.authView.hidden = false;
  ui.authError.textContent = message || "";
  ui.authPassword.value = "";
  ui.authUsername.focus();
}

function signOut(message) {
  if (state.socket) state.socket.stop();
  if (state.session) sessionStorage.removeItem(cursorKey());
  state.socket = null;
  state.session = null;
  state.threads = [];
  state.currentThreadId = null;
  state.runs.clear();
  state.pending = [];
  state.awaitingThread = false;
  state.cursor = 0;
  state.loadGeneration += 1;
  clearSession();
  setLocationThread(null);
  ui.threadList.replaceChildren();
  clearMessages();
  showAuth(message);
}

function authMessage(error) {
  switch (error.code) {
    case "invalid_credentials":
      return "Wrong username or password.";
    case "username_taken":
      return "That username is already taken. Choose another, or sign in.";
    case "network":
      return "cordon is not reachable. Check that the server is running.";
    default:
      return error.message || "Something went wrong. Try again.";
  }
}

ui.authForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const kind = event.submitter && event.submitter.value === "register" ? "register" : "login";
  const username = ui.authUsername.value.trim();
  const password = ui.authPassword.value;
  if (!username || !password) {
    ui.authError.textContent = "Enter a username and a password.";
    return;
  }
  ui.authError.textContent = "";
  for (const button of ui.authForm.querySelectorAll("button")) button.disabled = true;
  try {
    const session = await authenticate(kind, username, password);
    saveSession(session);
    enterChat(session);
  } catch (error) {
    ui.authError.textContent = authMessage(error);
  } finally {
    for (const button of ui.authForm.querySelectorAll("button")) button.disabled = false;
  }
});

ui.signOut.addEventListener("click", () => {
  const token = state.session && state.session.token;
  signOut("");
  // Server side too, so the token stops working everywhere it was copied to.
  // A 401 means it had already ended; anything else leaves it alive, so say so.
  if (token) {
    logout(token).catch((error) => {
      if (!(error instanceof ApiError && error.status === 401)) ui.authError.textContent = LOGOUT_UNREACHED;
    });
  }
});

/** A failed API call: an expired session goes back to sign-in; anything else is a notice. */
function handleApiError(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut(refusedMessage(error));
    return;
  }
  showNotice(error.message || "Request failed.");
}

function enterChat(session) {
  // The open thread is kept in the URL fragment (never sent to the server), so a reload reopens it.
  const wanted = decodeURIComponent(location.hash.slice(1));
  state.session = session;
  state.cursor = loadCursor();
  ui.authView.hidden = true;
  ui.chatView.hidden = false;
  ui.whoami.textContent = session.user.username;
  showNewChat();
  state.socket = new ChatSocket(session.token, {
    onFrame,
    cursor: () => {
      // Shown on the connection indicator: where the last (re)connect resumed the log.
      ui.conn.dataset.resumedFrom = String(state.cursor);
      return state.cursor;
    },
    onState: setConnectionState,
    onConnected: (isReconnect) => {
      // Messages sent just before the drop: the REST API now says whether they became runs.
      if (isReconnect) {
        for (const pending of state.pending) pending.view.root.remove();
        state.pending = [];
        state.awaitingThread = false;
      }
      resync();
    },
    onExpired: (reason) => signOut(reason === "signed out" ? SIGNED_OUT_ELSEWHERE : EXPIRED),
    onHandshakeFailed: () => {
      if (sessionExpired(session)) {
        signOut(EXPIRED);
        return;
      }
      // The handshake hides its status from scripts: ask the REST API whether the token still holds.
      listThreads(session.token).catch((error) => {
        if (error instanceof ApiError && error.status === 401) signOut(refusedMessage(error));
      });
    },
  });
  state.socket.start();
  refreshBudget();
  refreshThreads().then(() => {
    if (wanted && !state.currentThreadId && state.threads.some((t) => t.id === wanted)) selectThread(wanted);
  });
  ui.message.focus();
}

function setLocationThread(id) {
  history.replaceState(null, "", id ? `#${encodeURIComponent(id)}` : location.pathname);
}

// Another tab signed out: follow it.
window.addEventListener("storage", (event) => {
  if (event.key === SESSION_KEY && event.newValue === null && state.session) signOut("");
});

// ---------- connection ----------

function setConnectionState(connection) {
  ui.conn.dataset.state = connection;
  ui.connLabel.textContent = CONNECTION_LABELS[connection] || connection;
}

/** After (re)connecting: reload the thread list and the open thread, so nothing missed is missing. */
async function resync() {
  await refreshThreads();
  if (state.currentThreadId) await loadThread(state.currentThreadId);
}

// ---------- usage and budget ----------

const PERIOD_NAMES = { day: "Today", month: "This month" };

/** Reloads the sidebar's usage panel: per period, tokens and dollars used, the limits and what is left. */
async function refreshBudget() {
  if (!state.session) return;
  let budget;
  try {
    budget = await getBudget(state.session.token);
  } catch {
    return; // The panel keeps its last figures; the chat itself reports failures.
  }
  ui.budget.replaceChildren(el("h3.budget-title", {}, "Usage"));
  for (const period of budget.periods) ui.budget.append(budgetLine(period));
}

function budgetLine(period) {
  const used = `${period.used_tokens.toLocaleString()} tokens · $${period.used_usd.toFixed(4)}`;
  const limits = [];
  if (period.limit_tokens !== null) limits.push(`${period.remaining_tokens.toLocaleString()} of ${period.limit_tokens.toLocaleString()} tokens left`);
  if (period.limit_usd !== null) limits.push(`$${period.remaining_usd.toFixed(2)} of $${period.limit_usd.toFixed(2)} left`);
  const left = limits.length ? `${limits.join(", ")}; resets ${new Date(period.resets_at).toLocaleString()}` : "no limit";
  return el(
    "p.budget-line",
    { "data-period": period.period },
    el("strong", {}, `${PERIOD_NAMES[period.period] || period.period}: `),
    `${used} (${left})`,
  );
}

// ---------- threads ----------

async function refreshThreads() {
  if (!state.session) return;
  try {
    state.threads = await listThreads(state.session.token);
    renderThreads();
  } catch (error) {
    handleApiError(error);
  }
}

function renderThreads() {
  ui.noThreads.hidden = state.threads.length > 0;
  ui.threadList.replaceChildren(
    ...state.threads.map((thread) => {
      const current = thread.id === state.currentThreadId;
      const button = el("button.thread-link", {
        type: "button",
        "data-thread-id": thread.id,
        "aria-current": current ? "page" : null,
        title: thread.title,
        text: thread.title || "Untitled",
      });
      button.addEventListener("click", () => {
        closeSidebar();
        selectThread(thread.id);
      });
      return el("li", {}, button);
    }),
  );
  const current = state.threads.find((t) => t.id === state.currentThreadId);
  ui.threadTitle.textContent = current ? current.title : state.currentThreadId ? "" : "New chat";
}

function upsertThreadOnTop(id, title) {
  const index = state.threads.findIndex((t) => t.id === id);
  const thread = index >= 0 ? state.threads.splice(index, 1)[0] : { id, title };
  if (title) thread.title = title;
  state.threads.unshift(thread);
  renderThreads();
}

function clearMessages() {
  ui.messages.replaceChildren(ui.empty);
  ui.empty.hidden = false;
  updateStop();
}

function showNewChat() {
  state.currentThreadId = null;
  setLocationThread(null);
  state.loadGeneration += 1;
  clearMessages();
  renderThreads();
}

ui.newChat.addEventListener("click", () => {
  closeSidebar();
  showNewChat();
  ui.message.focus();
});

function selectThread(id) {
  if (id === state.currentThreadId) return;
  state.currentThreadId = id;
  setLocationThread(id);
  clearMessages();
  ui.empty.hidden = true;
  renderThreads();
  loadThread(id);
}

/** Loads a thread's messages and each run's stored events, merges them with what is live, renders. */
async function loadThread(threadId) {
  const generation = ++state.loadGeneration;
  const token = state.session.token;
  let messages;
  try {
    messages = await listMessages(token, threadId);
  } catch (error) {
    if (generation === state.loadGeneration) handleApiError(error);
    return;
  }
  if (generation !== state.loadGeneration) return;
  const order = [];
  const answers = new Map();
  for (const message of messages) {
    if (!message.run_id) continue;
    const run = ensureRun(message.run_id, threadId, false);
    if (!order.includes(run)) order.push(run);
    if (message.role === "user") run.view.setUserText(message.content);
    else answers.set(run.id, message.content);
  }
  const stored = await Promise.all(
    order.map((run) => listRunEvents(token, run.id).catch(() => null)),
  );
  if (generation !== state.loadGeneration) return;
  order.forEach((run, index) => {
    for (const event of stored[index] || []) applyEvent(run, event);
    if (run.events.length === 0 && answers.has(run.id)) {
      run.view.setAnswer(answers.get(run.id));
      run.view.setStatus("completed");
    }
  });
  // Live runs of this thread that the listing did not have yet, then messages still waiting.
  for (const run of state.runs.values()) {
    if (run.threadId === threadId && !order.includes(run)) order.push(run);
  }
  const nodes = order.map((run) => run.view.root);
  for (const pending of state.pending) if (pending.threadId === threadId) nodes.push(pending.view.root);
  ui.messages.replaceChildren(ui.empty, ...nodes);
  ui.empty.hidden = nodes.length > 0;
  updateStop();
  scrollToEnd();
}

// ---------- runs ----------

function ensureRun(runId, threadId, live) {
  let run = state.runs.get(runId);
  if (run) return run;
  const view = new RunView({ userText: "" });
  view.setRunId(runId);
  view.timeline.open = live;
  run = { id: runId, threadId, seen: new Set(), lastSeq: 0, events: [], view };
  state.runs.set(runId, run);
  return run;
}

/** Applies a run event once (events come both live and from the REST API after a resync). */
function applyEvent(run, event) {
  if (run.seen.has(event.seq)) return;
  run.seen.add(event.seq);
  if (event.seq > run.lastSeq) {
    run.lastSeq = event.seq;
    run.events.push(event);
    run.view.apply(event);
    return;
  }
  // An older event filled a gap: replay the run in order into a fresh view.
  run.events.push(event);
  run.events.sort((a, b) => a.seq - b.seq);
  const old = run.view;
  const view = new RunView({ userText: old.user.textContent });
  view.setRunId(run.id);
  view.timeline.open = old.timeline.open;
  for (const e of run.events) view.apply(e);
  run.view = view;
  old.root.replaceWith(view.root);
}

function onRunEvent(frame) {
  if (frame.type === "agent_completed" || frame.type === "agent_error") refreshBudget();
  const isCurrent = frame.thread_id === state.currentThreadId;
  let run = state.runs.get(frame.run_id);
  if (!run) {
    if (frame.type === "agent_started") upsertThreadOnTop(frame.thread_id);
    if (!isCurrent) return; // Loaded from the REST API when the thread is opened.
    const index = pendingIndexFor(frame);
    if (index >= 0) {
      const [pending] = state.pending.splice(index, 1);
      run = { id: frame.run_id, threadId: frame.thread_id, seen: new Set(), lastSeq: 0, events: [], view: pending.view };
      pending.view.setRunId(frame.run_id);
      state.runs.set(run.id, run);
    } else {
      // A run started elsewhere (another tab): its user message comes from the REST API.
      run = ensureRun(frame.run_id, frame.thread_id, true);
      fillUserText(run);
    }
    if (!run.view.root.isConnected) ui.messages.append(run.view.root);
    ui.empty.hidden = true;
  }
  applyEvent(run, frame);
  if (frame.type === "agent_completed" || frame.type === "agent_error") {
    if (frame.type === "agent_error" && frame.code === "cancelled") ui.message.focus();
  }
  if (isCurrent) {
    updateStop();
    scrollToEnd();
  }
}

/** The message of this tab that the run's first event answers: by `client_request_id`
 * (on `agent_started`), else the oldest waiting on the thread (messages are answered in order). */
function pendingIndexFor(frame) {
  if (frame.client_request_id) {
    const index = state.pending.findIndex((p) => p.clientRequestId === frame.client_request_id);
    if (index >= 0) return index;
  }
  return state.pending.findIndex((p) => p.threadId === frame.thread_id);
}

async function fillUserText(run) {
  try {
    const messages = await listMessages(state.session.token, run.threadId);
    const mine = messages.find((m) => m.run_id === run.id && m.role === "user");
    if (mine) run.view.setUserText(mine.content);
  } catch {
    // The resync after the next reconnect fills it in.
  }
}

function onFrame(frame) {
  if (frame.seq > 0) advanceCursor(frame.seq);
  if (frame.type === "thread_created") {
    upsertThreadOnTop(frame.thread_id, frame.title);
    if (state.awaitingThread) {
      state.awaitingThread = false;
      for (const pending of state.pending) if (pending.threadId === null) pending.threadId = frame.thread_id;
      state.currentThreadId = frame.thread_id;
      setLocationThread(frame.thread_id);
      state.loadGeneration += 1;
      renderThreads();
    }
    return;
  }
  if (frame.type === "agent_error" && frame.seq === 0) {
    onNotice(frame);
    return;
  }
  if (frame.type === "error" && frame.code === "cursor_expired") {
    // Retention deleted what this tab missed: continue from the oldest event kept, and
    // reload the open thread from the REST API (which keeps every message).
    state.cursor = Math.max(0, (frame.oldest_seq || 1) - 1);
    state.socket.send({ type: "resume", after_seq: state.cursor });
    resync();
    return;
  }
  if (frame.type === "error") {
    showNotice(`${frame.code}: ${frame.message}`);
    // A message that never became a run: drop its waiting view.
    if (frame.code !== "run_not_found") {
      const pending = state.pending.pop();
      if (pending) {
        pending.view.apply({ type: "agent_error", code: frame.code, message: frame.message });
        state.awaitingThread = false;
      }
    }
    updateStop();
    return;
  }
  if (frame.run_id) onRunEvent(frame);
}

/** An `agent_error` with seq 0 is not in the log: a refusal of a message of this tab (its run
 * never existed), or the notice that a run in progress failed because storage failed. */
function onNotice(frame) {
  const run = state.runs.get(frame.run_id);
  if (run) {
    run.view.apply(frame);
  } else {
    showNotice(`${frame.code}: ${frame.message}`);
    const byId = state.pending.findIndex((p) => frame.client_request_id && p.clientRequestId === frame.client_request_id);
    const [pending] = state.pending.splice(byId >= 0 ? byId : state.pending.length - 1, 1);
    if (pending) pending.view.apply(frame);
    state.awaitingThread = false;
  }
  updateStop();
}

// ---------- composer ----------

/** Runs of the open thread that are running or queued. */
function runningRuns() {
  const running = [];
  for (const run of state.runs.values()) {
    const status = run.view.root.dataset.status;
    const live = status === "running" || status === "queued" || status === "waiting_approval";
    if (run.threadId === state.currentThreadId && live) running.push(run);
  }
  return running;
}

/** Whether a message sent now meets a run in progress on the thread (double texting). */
function threadBusy() {
  if (runningRuns().length > 0) return true;
  return state.pending.some((p) => p.threadId !== null && p.threadId === state.currentThreadId);
}

function updateStop() {
  const busy = threadBusy();
  ui.stop.hidden = runningRuns().length === 0;
  ui.multitask.hidden = !busy;
}

// Approve / Reject on a call that waits: the answer goes over the socket; its outcome
// (approval_resolved, or an error) comes back through the stream.
ui.messages.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-decision]");
  if (!button) return;
  const frame = { type: button.dataset.decision, call_id: button.dataset.callId, run_id: button.dataset.runId };
  if (!state.socket.send(frame)) return;
  for (const sibling of button.parentElement.querySelectorAll("button")) sibling.disabled = true;
});

ui.stop.addEventListener("click", () => {
  for (const run of runningRuns()) state.socket.send({ type: "cancel", run_id: run.id });
  ui.message.focus();
});

function sendMessage() {
  const content = ui.message.value;
  if (!content.trim() || !state.socket) return;
  state.sent += 1;
  // Unique enough to tell this tab's messages apart (crypto.randomUUID needs a secure context).
  const clientRequestId = `web-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}-${state.sent}`;
  const frame = { type: "user_message", content, client_request_id: clientRequestId };
  if (state.currentThreadId) frame.thread_id = state.currentThreadId;
  // While the thread's run is in progress the chat queues by default (or interrupts, if chosen).
  if (state.currentThreadId && threadBusy()) frame.multitask = ui.multitask.value;
  if (!state.socket.send(frame)) {
    showNotice("Not connected: your message was not sent. cordon reconnects by itself; try again in a moment.");
    return;
  }
  hideNotice();
  ui.message.value = "";
  autosize();
  const view = new RunView({ userText: content });
  view.timeline.open = true;
  if (!state.currentThreadId) state.awaitingThread = true;
  state.pending.push({ threadId: state.currentThreadId, clientRequestId, view });
  ui.messages.append(view.root);
  ui.empty.hidden = true;
  updateStop();
  scrollToEnd();
}

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  sendMessage();
});

ui.message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    sendMessage();
  }
});

function autosize() {
  ui.message.style.height = "auto";
  ui.message.style.height = `${Math.min(ui.message.scrollHeight, 200)}px`;
  ui.message.style.overflowY = ui.message.scrollHeight > 200 ? "auto" : "hidden";
}
ui.message.addEventListener("input", autosize);

// ---------- small things ----------

let noticeTimer = null;
function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(hideNotice, 8000);
}

function hideNotice() {
  ui.notice.hidden = true;
  ui.notice.textContent = "";
}

function scrollToEnd() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function closeSidebar() {
  document.body.classList.remove("sidebar-open");
  ui.toggleSidebar.setAttribute("aria-expanded", "false");
}

ui.toggleSidebar.addEventListener("click", () => {
  const open = document.body.classList.toggle("sidebar-open");
  ui.toggleSidebar.setAttribute("aria-expanded", String(open));
  if (open) ui.newChat.focus();
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && document.body.classList.contains("sidebar-open")) {
    closeSidebar();
    ui.toggleSidebar.focus();
  }
});

// ---------- start ----------

const stored = loadSession();
if (stored && !sessionExpired(stored)) {
  enterChat(stored);
} else if (stored) {
  signOut(EXPIRED);
} else {
  showAuth("");
}

// The reference clients of cordon's standard streams, driven against a real `cordon serve`: the AI SDK's
// useChat engine (AbstractChat + DefaultChatTransport, every chunk validated by the SDK's own schema) and
// AG-UI's HttpAgent (events validated and their order verified by the client). Prints what they decoded
// as one JSON object; the Rust test asserts on it.
//
//   node clients.mjs aisdk BASE_URL TOKEN '{"texts": ["…"], "approve": true|false, "chatId": "…"}'
//   node clients.mjs agui  BASE_URL TOKEN '{"text": "…", "approve": true|false, "threadId": "…"}'
import {
  AbstractChat,
  DefaultChatTransport,
  lastAssistantMessageIsCompleteWithApprovalResponses,
  parseJsonEventStream,
  uiMessageChunkSchema,
} from "ai";
import { HttpAgent } from "@ag-ui/client";

const [, , mode, base, token, plan = "{}"] = process.argv;
const args = JSON.parse(plan);
const warnings = [];
console.warn = (...parts) => warnings.push(parts.map(String).join(" "));
console.log = (...parts) => warnings.push(parts.map(String).join(" "));

class ChatState {
  status = "ready";
  error = undefined;
  messages = [];
  pushMessage = (message) => { this.messages = [...this.messages, message]; };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (index, message) => { this.messages = this.messages.with(index, message); };
  snapshot = (value) => structuredClone(value);
}

class Chat extends AbstractChat {
  constructor(options) { super({ ...options, state: new ChatState() }); }
}

async function settled(chat) {
  for (let i = 0; i < 600 && (chat.status === "submitted" || chat.status === "streaming"); i++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function aisdk({ texts, approve, chatId }) {
  const chunks = [];
  const errors = [];
  const reading = [];
  // Every response is also read by the SDK's own chunk parser, to record what came on the wire.
  const recording = async (url, init) => {
    const response = await fetch(url, init);
    if (!response.ok || !response.body) return response;
    const [forChat, forRecord] = response.body.tee();
    reading.push((async () => {
      const batch = [];
      for await (const parsed of parseJsonEventStream({ stream: forRecord, schema: uiMessageChunkSchema })) {
        batch.push(parsed.success ? parsed.value : { invalid: String(parsed.error) });
      }
      chunks.push(batch);
    })());
    return new Response(forChat, { status: response.status, headers: response.headers });
  };
  const chat = new Chat({
    id: chatId ?? `chat-${Math.random().toString(36).slice(2)}`,
    transport: new DefaultChatTransport({
      api: `${base}/api/chat`,
      headers: { Authorization: `Bearer ${token}` },
      fetch: recording,
    }),
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
    onError: (error) => errors.push(error.message),
  });
  for (const text of texts) {
    await chat.sendMessage({ text });
    await settled(chat);
    const waiting = (chat.lastMessage?.parts ?? []).filter((part) => part.state === "approval-requested");
    if (waiting.length > 0 && approve !== undefined) {
      for (const part of waiting) {
        await chat.addToolApprovalResponse({ id: part.approval.id, approved: approve, reason: approve ? undefined : "not now" });
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      await settled(chat);
    }
  }
  await Promise.all(reading);
  return { status: chat.status, messages: chat.messages, chunks, errors, warnings };
}

async function agui({ text, approve, threadId }) {
  const agent = new HttpAgent({
    url: `${base}/api/agui`,
    threadId: threadId ?? `agui-${Math.random().toString(36).slice(2)}`,
    headers: { Authorization: `Bearer ${token}` },
    initialMessages: [{ id: "user-1", role: "user", content: text }],
  });
  const runs = [];
  const run = async (params) => {
    const events = [];
    try {
      const result = await agent.runAgent(
        { runId: `client-run-${runs.length + 1}`, tools: [], context: [], forwardedProps: {}, ...params },
        { onEvent: ({ event }) => { events.push(event); } },
      );
      runs.push({ events, result: result.result ?? null, newMessages: result.newMessages });
    } catch (error) {
      runs.push({ events, failure: String(error?.message ?? error) });
    }
  };
  await run({});
  const finished = runs[0].events.find((event) => event.type === "RUN_FINISHED");
  if (approve !== undefined && finished?.outcome?.type === "interrupt") {
    const resume = finished.outcome.interrupts.map((interrupt) => ({
      interruptId: interrupt.id,
      status: "resolved",
      payload: approve ? { approved: true } : { approved: false, reason: "not now" },
    }));
    await run({ resume });
  }
  return { runs, messages: agent.messages, warnings };
}

const result = mode === "aisdk" ? await aisdk(args) : await agui(args);
process.stdout.write(JSON.stringify(result));
process.exit(0);

// The /ws connection: answers pings, reconnects with exponential backoff and jitter and resumes after the last seq seen, reports its state.

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;

/** Delay before reconnect attempt `attempt` (0-based): exponential, capped, with jitter. */
export function backoffDelay(attempt) {
  const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

export class ChatSocket {
  /**
   * handlers: onFrame(frame), onState("connecting"|"connected"|"reconnecting"|"offline"),
   * onConnected(isReconnect), onExpired(reason), onHandshakeFailed(), cursor() → the last
   * `seq` seen (0: none), so each (re)connect resumes the event log right after it.
   */
  constructor(token, handlers) {
    this.token = token;
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.watchdog = null;
    this.stopped = false;
    this.everConnected = false;
    this.heartbeatMs = 15000;
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => this.setState("offline");
  }

  start() {
    window.addEventListener("online", this.onOnline);
    window.addEventListener("offline", this.onOffline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    window.removeEventListener("offline", this.onOffline);
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000, "signed out");
      this.ws = null;
    }
  }

  get open() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN && this.state === "connected";
  }

  /** Sends a client frame; false when not connected. */
  send(frame) {
    if (!this.open) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  setState(state) {
    this.state = state;
    this.handlers.onState(state);
  }

  connect() {
    if (this.stopped) return;
    clearTimeout(this.timer);
    if (!navigator.onLine) {
      this.setState("offline");
      return;
    }
    this.setState(this.everConnected ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const cursor = this.handlers.cursor ? this.handlers.cursor() : 0;
    const url = `${scheme}//${location.host}/ws${cursor > 0 ? `?after_seq=${cursor}` : ""}`;
    let opened = false;
    // Browsers cannot set headers on a WebSocket: the token rides as a second subprotocol
    // (never in the URL, where proxies and history would keep it); cordon answers "cordon.v1".
    const ws = new WebSocket(url, ["cordon.v1", `cordon.token.${this.token}`]);
    this.ws = ws;
    ws.onopen = () => {
      opened = true;
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this.armWatchdog();
      if (frame.type === "ping") {
        ws.send(JSON.stringify({ type: "pong" }));
        return;
      }
      if (frame.type === "connection_established") {
        if (frame.heartbeat_interval_ms > 0) this.heartbeatMs = frame.heartbeat_interval_ms;
        const isReconnect = this.everConnected;
        this.everConnected = true;
        this.attempt = 0;
        this.setState("connected");
        this.handlers.onConnected(isReconnect);
        return;
      }
      this.handlers.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearTimeout(this.watchdog);
      if (this.stopped) return;
      if (event.code === 1008) {
        this.handlers.onExpired(event.reason);
        return;
      }
      if (!opened) this.handlers.onHandshakeFailed();
      this.scheduleReconnect();
    };
  }

  scheduleReconnect() {
    if (this.stopped) return;
    this.everConnected = true;
    if (!navigator.onLine) {
      this.setState("offline");
      return;
    }
    this.setState("reconnecting");
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    if (this.stopped || this.ws) return;
    this.attempt = 0;
    this.connect();
  }

  /** A socket that hears nothing (not even a ping) for two heartbeats is dead: drop it. */
  armWatchdog() {
    clearTimeout(this.watchdog);
    const ws = this.ws;
    this.watchdog = setTimeout(() => {
      if (this.ws === ws && ws) ws.close(4000, "heartbeat lost");
    }, this.heartbeatMs * 2 + 5000);
  }
}

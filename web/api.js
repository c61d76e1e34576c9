// The REST API of cordon and the stored session (token + user) of this browser.

const SESSION_KEY = "cordon.session";

/** An API failure: `code` is cordon's error code (or `network`), `status` the HTTP status. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The stored session, or null when absent or expired. */
export function loadSession() {
  try {
    const session = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    if (!session || typeof session.token !== "string") return null;
    return session;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  localStorage.removeItem(SESSION_KEY);
}

export function sessionExpired(session) {
  const expires = Date.parse(session.expires_at);
  return Number.isFinite(expires) && expires <= Date.now();
}

export { SESSION_KEY };

async function request(method, path, { token, body } = {}) {
  const headers = { accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "cordon is not reachable");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && data.error ? data.error : {};
    throw new ApiError(response.status, error.code || "http_" + response.status, error.message || response.statusText);
  }
  return data;
}

/**
 * `POST /api/auth/login` or `/api/auth/register`; resolves to the session to store.
 * A server run with `--quiet-signup` answers a sign-up `202 accepted` without a
 * token (free and taken names alike), so the sign-in follows.
 */
export async function authenticate(kind, username, password) {
  const body = { username, password };
  let auth = await request("POST", kind === "register" ? "/api/auth/register" : "/api/auth/login", { body });
  if (!auth.token) auth = await request("POST", "/api/auth/login", { body });
  return {
    token: auth.token,
    expires_at: auth.expires_at,
    user: auth.user || { id: auth.user_id, username },
  };
}

/** `GET /api/me/budget`: this user's model use per day and month, their limits and what is left. */
export const getBudget = (token) => request("GET", "/api/me/budget", { token });

export const listThreads = (token) => request("GET", "/api/threads", { token });

/** `POST /api/auth/logout`: ends this token and every other one of the user, on every device. */
export const logout = (token) => request("POST", "/api/auth/logout", { token });

export const listMessages = (token, threadId) =>
  request("GET", `/api/threads/${encodeURIComponent(threadId)}/messages`, { token });

export const listRunEvents = (token, runId) =>
  request("GET", `/api/runs/${encodeURIComponent(runId)}/events?after_seq=0`, { token });

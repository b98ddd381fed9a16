// The JSON API, called with the key the user signed in with. The key is kept in this tab's
// session storage only: closing the tab forgets it.

const KEY = "stratus.console.key";

export const session = {
  account: null, // GET /v1/account, once signed in
  get key() {
    return sessionStorage.getItem(KEY);
  },
  start(key, account) {
    sessionStorage.setItem(KEY, key);
    this.account = account;
  },
  end() {
    sessionStorage.removeItem(KEY);
    this.account = null;
  },
  get admin() {
    return Boolean(this.account && this.account.key.admin);
  },
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The message of an error body in any surface's shape: Segmind's {"error": "..."},
// Anthropic's {"type": "error", "error": {"message"}}, OpenAI's {"error": {"message"}}.
export function errorMessage(status, body) {
  const error = body && body.error;
  if (typeof error === "string") return error;
  if (error && typeof error.message === "string") return error.message;
  return `the server answered HTTP ${status}`;
}

let onSignedOut = () => {};

// What to do when the key stops working (revoked while signed in).
export function whenSignedOut(handler) {
  onSignedOut = handler;
}

export async function api(path, { method = "GET", body, key } = {}) {
  const headers = { "x-api-key": key ?? session.key ?? "" };
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(0, `cannot reach the server (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = errorMessage(response.status, data);
    if (response.status === 401 && key === undefined) onSignedOut(message);
    throw new ApiError(response.status, message);
  }
  return data;
}

export function query(params) {
  const pairs = Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== "");
  return pairs.length ? "?" + new URLSearchParams(pairs).toString() : "";
}

// Server-sent events of a fetch response's body, as {event, data} with data parsed as JSON.
export async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer = (buffer + decoder.decode(value, { stream: true })).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const parsed = parseEvent(block);
      if (parsed) yield parsed;
    }
  }
}

function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "event") event = value;
    else if (name === "data") data.push(value);
  }
  if (!data.length) return null;
  const text = data.join("\n");
  try {
    return { event, data: JSON.parse(text) };
  } catch {
    return { event, data: text };
  }
}

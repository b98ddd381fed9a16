// The playground: a request to POST /v1/messages, its answer streamed in as it is made,
// with its tokens, cost and time to first token.

import { api, ApiError, errorMessage, events, session } from "./api.js";
import { h, facts, field, fmt, notice, options } from "./dom.js";
import { curlSnippet, pythonSnippet } from "./snippets.js";

const form = {}; // the controls, by name
let running = null; // the AbortController of the request in flight

function turn(role = "user", text = "") {
  const roles = h("select", { class: "role" });
  options(roles, [["user"], ["assistant"]], role);
  const remove = h("button", { type: "button", class: "quiet", title: "Remove this turn",
                               text: "×", onclick: () => row.remove() });
  const row = h("div", { class: "turn" }, roles,
                h("textarea", { class: "content", rows: 4, placeholder: "Message", text }),
                remove);
  return row;
}

function addTurn() {
  const roles = [...form.turns.querySelectorAll(".role")];
  const last = roles.length ? roles[roles.length - 1].value : "assistant";
  form.turns.append(turn(last === "user" ? "assistant" : "user"));
}

export function requestBody() {
  const body = { model: form.model.value, max_tokens: Number(form.maxTokens.value) || 1 };
  if (form.system.value.trim()) body.system = form.system.value;
  if (form.temperature.value !== "") body.temperature = Number(form.temperature.value);
  body.messages = [...form.turns.querySelectorAll(".turn")].map((row) => ({
    role: row.querySelector(".role").value,
    content: row.querySelector(".content").value,
  }));
  return body;
}

function setStat(id, value) {
  document.getElementById(id).textContent = value;
}

function resetStats() {
  for (const id of ["stat-ttft", "stat-input", "stat-output", "stat-cost", "stat-total",
                    "stat-speed", "stat-stop"]) setStat(id, "—");
  form.requestLink.replaceChildren("—");
}

async function run() {
  const body = { ...requestBody(), stream: true };
  form.output.replaceChildren();
  form.problem.replaceChildren();
  resetStats();
  form.state.textContent = "Sending…";
  form.run.disabled = true;
  form.stop.disabled = false;
  running = new AbortController();
  const started = performance.now();
  let firstToken = null;
  let outputTokens = 0;
  let requestId = null;
  let ended = false;
  try {
    const response = await fetch("/v1/messages", {
      method: "POST", signal: running.signal, body: JSON.stringify(body),
      headers: { "x-api-key": session.key, "content-type": "application/json" },
    });
    requestId = response.headers.get("request-id");
    if (requestId) {
      form.requestLink.replaceChildren(
        h("a", { href: `#/requests/${encodeURIComponent(requestId)}`, text: requestId }));
    }
    if (!response.ok) {
      const data = await response.json().catch(() => null);
      throw new ApiError(response.status, errorMessage(response.status, data));
    }
    form.state.textContent = "Waiting for the first token…";
    for await (const { event, data } of events(response)) {
      if (event === "message_start") {
        setStat("stat-input", fmt.int(data.message.usage.input_tokens));
      } else if (event === "content_block_delta" && data.delta.type === "text_delta") {
        if (firstToken === null) {
          firstToken = performance.now() - started;
          setStat("stat-ttft", fmt.ms(firstToken));
          form.state.textContent = "Streaming…";
        }
        form.output.append(data.delta.text);
      } else if (event === "message_delta") {
        outputTokens = data.usage.output_tokens;
        setStat("stat-output", fmt.int(outputTokens));
        setStat("stat-stop", data.delta.stop_reason ?? "—");
      } else if (event === "message_stop") {
        ended = true;
      } else if (event === "error") {
        throw new ApiError(500, data.error.message);
      }
    }
    if (!ended) throw new ApiError(0, "the stream ended before the answer did");
    const total = performance.now() - started;
    setStat("stat-total", fmt.ms(total));
    if (firstToken !== null && outputTokens > 1 && total > firstToken) {
      const speed = (outputTokens - 1) / ((total - firstToken) / 1000);
      setStat("stat-speed", `${speed.toFixed(1)} tok/s`);
    }
    form.state.textContent = "Done";
  } catch (error) {
    const aborted = error.name === "AbortError";
    form.state.textContent = aborted ? "Stopped" : "Failed";
    if (!aborted) form.problem.replaceChildren(notice(error.message));
  } finally {
    running = null;
    form.run.disabled = false;
    form.stop.disabled = true;
  }
  if (requestId) await showCost(requestId);
}

// The charge is settled when the job ends, just after the stream does: ask the history.
async function showCost(requestId) {
  for (let attempt = 0; attempt < 40; attempt += 1) {
    try {
      const entry = await api(`/v1/requests/${encodeURIComponent(requestId)}`);
      if (entry.completed_at !== null) {
        setStat("stat-cost", fmt.usd(entry.credits_deduction));
        return;
      }
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

function showSnippet(kind) {
  const text = kind === "curl" ? curlSnippet(location.origin, requestBody())
    : pythonSnippet(location.origin, requestBody());
  form.snippet.hidden = false;
  form.snippet.querySelector("pre").textContent = text;
  const said = form.snippet.querySelector("small");
  said.textContent = "Select the text to copy it.";
  if (navigator.clipboard) {
    navigator.clipboard.writeText(text).then(
      () => { said.textContent = "Copied to the clipboard."; },
      () => {});
  }
}

export async function render(main) {
  const models = await api("/v1/models");
  form.model = h("select", { id: "model" });
  const ids = [...new Set(models.data.map((m) => m.id))];
  const preferred = ids.includes("claude-3-haiku") ? "claude-3-haiku" : ids[0];
  options(form.model, ids.map((id) => [id]), preferred);
  form.system = h("textarea", { id: "system", rows: 2, placeholder: "Optional" });
  form.turns = h("div", { id: "turns" }, turn("user", "Hello! What can you do?"));
  form.maxTokens = h("input", { id: "max-tokens", type: "number", min: "1", value: "256" });
  form.temperature = h("input", { id: "temperature", type: "number", min: "0", max: "1",
                                  step: "0.1", placeholder: "model default" });
  form.run = h("button", { id: "run", type: "submit", text: "Run",
                          title: "Ctrl+Enter" });
  form.stop = h("button", { id: "stop", type: "button", class: "quiet", text: "Stop",
                            disabled: true, onclick: () => running && running.abort() });
  form.output = h("pre", { id: "output", class: "output", "aria-live": "polite" });
  form.state = h("span", { id: "run-state", class: "muted", text: "Ready" });
  form.problem = h("div", { id: "run-error" });
  form.requestLink = h("span", { text: "—" });
  form.snippet = h("div", { id: "snippet", class: "snippet", hidden: true },
                   h("small", { class: "muted" }), h("pre", {}));
  const stats = facts([["Time to first token", null, "stat-ttft"],
                       ["Input tokens", null, "stat-input"],
                       ["Output tokens", null, "stat-output"],
                       ["Cost", null, "stat-cost"],
                       ["Total time", null, "stat-total"],
                       ["Speed", null, "stat-speed"],
                       ["Stop reason", null, "stat-stop"]]);
  stats.append(h("dt", { text: "Request" }), h("dd", { id: "stat-request" }, form.requestLink));
  const left = h("form", { class: "card", id: "playground-form",
                           onsubmit: (event) => { event.preventDefault(); run(); },
                           onkeydown: (event) => { // Ctrl+Enter (or Cmd+Enter) runs it
                             if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
                               event.preventDefault();
                               if (!form.run.disabled) run();
                             }
                           } },
    h("div", { class: "row" }, field("Model", form.model), field("Max tokens", form.maxTokens),
      field("Temperature", form.temperature)),
    field("System prompt", form.system),
    h("div", { class: "label" }, "Messages"), form.turns,
    h("button", { type: "button", class: "quiet", id: "add-turn", text: "+ Add turn",
                  onclick: addTurn }),
    h("div", { class: "actions" }, form.run, form.stop,
      h("button", { type: "button", class: "quiet", id: "copy-curl", text: "Copy as curl",
                    onclick: () => showSnippet("curl") }),
      h("button", { type: "button", class: "quiet", id: "copy-python", text: "Copy as Python",
                    onclick: () => showSnippet("python") })),
    form.snippet);
  const right = h("section", { class: "card" },
    h("div", { class: "heading" }, h("h2", { text: "Answer" }), form.state),
    form.problem, form.output, stats);
  main.append(h("h1", { text: "Playground" }), h("div", { class: "split" }, left, right));
}

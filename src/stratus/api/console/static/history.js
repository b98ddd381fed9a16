// History: the account's requests with filters, and one request in detail (its input and
// output, metrics and webhook attempts).

import { api, ApiError, query } from "./api.js";
import { h, facts, field, fmt, notice, options, table } from "./dom.js";

const STATUSES = ["QUEUED", "PROCESSING", "COMPLETED", "FAILED"];
const filters = { status: "", model: "", since: "", until: "" };

function isoFromLocal(value) {
  return value ? new Date(value).toISOString() : "";
}

function statusBadge(status) {
  return h("span", { class: `status ${status.toLowerCase()}`, text: status });
}

function requestRow(entry) {
  const link = h("a", { href: `#/requests/${encodeURIComponent(entry.request_id)}`,
                        text: entry.request_id });
  return h("tr", { dataset: { requestId: entry.request_id } },
           h("td", { text: fmt.time(entry.created_at) }), h("td", {}, link),
           h("td", { text: entry.model }), h("td", {}, statusBadge(entry.status)),
           h("td", { class: "num", text: fmt.int(entry.input_tokens) }),
           h("td", { class: "num", text: fmt.int(entry.output_tokens) }),
           h("td", { class: "num", text: fmt.usd(entry.credits_deduction) }),
           h("td", { class: "num", text: fmt.ms(entry.latency_ms) }));
}

async function loadPage(body, more, after) {
  const page = await api("/v1/requests" + query({
    status: filters.status, model: filters.model, since: isoFromLocal(filters.since),
    until: isoFromLocal(filters.until), limit: 25, after_id: after,
  }));
  body.append(...page.data.map(requestRow));
  if (!body.children.length) {
    body.append(h("tr", {}, h("td", { colspan: 8, class: "muted",
                                      text: "No requests match these filters." })));
  }
  more.hidden = !page.has_more;
  more.onclick = () => loadPage(body, more, page.last_id).catch(() => {});
}

export async function render(main) {
  const models = await api("/v1/models");
  const status = h("select", { id: "filter-status" });
  options(status, [["", "any"], ...STATUSES.map((s) => [s])], filters.status);
  const model = h("select", { id: "filter-model" });
  const ids = [...new Set(models.data.map((m) => m.id))];
  options(model, [["", "any"], ...ids.map((id) => [id])], filters.model);
  const since = h("input", { id: "filter-since", type: "datetime-local", value: filters.since });
  const until = h("input", { id: "filter-until", type: "datetime-local", value: filters.until });
  const body = h("tbody");
  const more = h("button", { id: "load-more", type: "button", class: "quiet",
                             text: "Load more", hidden: true });
  const grid = table("history-table", ["Created", "Request", "Model", "Status", "In", "Out",
                                       "Cost", "Latency"], []);
  grid.querySelector("tbody").replaceWith(body);
  const problem = h("div");
  const apply = async (event) => {
    event.preventDefault();
    Object.assign(filters, { status: status.value, model: model.value, since: since.value,
                             until: until.value });
    body.replaceChildren();
    problem.replaceChildren();
    try {
      await loadPage(body, more);
    } catch (error) {
      problem.replaceChildren(notice(error.message));
    }
  };
  main.append(
    h("h1", { text: "History" }),
    h("form", { class: "card row filters", id: "filters", onsubmit: apply },
      field("Status", status), field("Model", model), field("Created from", since),
      field("Created before", until),
      h("button", { id: "apply-filters", type: "submit", text: "Apply" })),
    problem, h("div", { class: "card" }, grid, more));
  await loadPage(body, more);
}

function partText(part) {
  if (part.type === "text") return part.text;
  if (part.type === "image") {
    const about = [part.media_type, part.data_bytes ? `${fmt.int(part.data_bytes)} bytes` : null,
                   part.url].filter(Boolean);
    return about.length ? `[image: ${about.join(", ")}]` : "[image]";
  }
  if (part.type === "tool_use") return JSON.stringify({ tool: part.name, input: part.input });
  if (part.type === "tool_result") return (part.content || []).map(partText).join("");
  return JSON.stringify(part);
}

function inputSection(input) {
  const section = h("section", { class: "card", id: "request-input" },
                    h("h2", { text: "Input" }));
  if (input.system) section.append(h("div", { class: "label", text: "System" }),
                                   h("pre", { class: "output", text: input.system }));
  for (const message of input.messages || []) {
    const text = (message.parts || []).map(partText).join("");
    section.append(h("div", { class: "label", text: message.role }),
                   h("pre", { class: "output", text }));
  }
  const params = Object.entries(input).filter(([name, value]) =>
    !["messages", "system"].includes(name) && value !== null &&
    !(Array.isArray(value) && value.length === 0));
  section.append(facts(params.map(([name, value]) =>
    [name, typeof value === "object" ? JSON.stringify(value) : String(value)])));
  return section;
}

function outputSection(content) {
  const section = h("section", { class: "card", id: "request-output" },
                    h("h2", { text: "Output" }));
  const message = content.output;
  if (!message) {
    const why = content.error ?? `No answer yet (${content.status}).`;
    section.append(h("p", { class: "muted", text: why }));
  } else {
    section.append(h("pre", { class: "output", text: message.content.map(partText).join("") }));
  }
  const metrics = content.metrics;
  if (metrics) {
    const speed = metrics.output_tokens_per_s;
    section.append(facts([
      ["Queue time", fmt.ms(metrics.queue_ms)], ["Time to first token", fmt.ms(metrics.ttft_ms)],
      ["Inference", fmt.ms(metrics.inference_ms)],
      ["Speed", speed ? `${speed.toFixed(1)} tok/s` : null],
      ["Stop reason", message ? message.stop_reason : null],
      ["Kept until", fmt.time(content.expires_at)]]));
  }
  return section;
}

async function webhookSection(entry) {
  const section = h("section", { class: "card", id: "request-webhook" },
                    h("h2", { text: "Webhook" }));
  if (!entry.webhook) {
    section.append(h("p", { class: "muted", text: "This request had no webhook." }));
    return section;
  }
  const log = await api(`/v1/requests/${encodeURIComponent(entry.request_id)}/webhook`);
  section.append(facts([["URL", log.url], ["Status", log.status], ["Webhook id", log.webhook_id]]));
  section.append(table("webhook-attempts", ["Attempt", "At", "HTTP status", "Error", "Took"],
    log.attempts.map((a) => h("tr", {}, h("td", { text: a.attempt }),
      h("td", { text: fmt.time(a.at) }), h("td", { text: a.status_code ?? "—" }),
      h("td", { text: a.error ?? "" }), h("td", { class: "num", text: fmt.ms(a.duration_ms) })))));
  return section;
}

export async function renderEntry(main, requestId) {
  const path = `/v1/requests/${encodeURIComponent(requestId)}`;
  const entry = await api(path);
  main.append(
    h("p", {}, h("a", { href: "#/history", text: "← History" })),
    h("h1", { class: "mono", text: entry.request_id }),
    h("section", { class: "card", id: "request-summary" }, facts([
      ["Status", entry.status, "entry-status"], ["Model", `${entry.model} (${entry.slug})`],
      ["Input tokens", fmt.int(entry.input_tokens), "entry-input-tokens"],
      ["Output tokens", fmt.int(entry.output_tokens), "entry-output-tokens"],
      ["Cost", fmt.usd(entry.credits_deduction), "entry-cost"],
      ["Latency", fmt.ms(entry.latency_ms)], ["Created", fmt.time(entry.created_at)],
      ["Started", fmt.time(entry.started_at)], ["Completed", fmt.time(entry.completed_at)],
      ["Error", entry.error], ["Key", entry.key_id], ["End user", entry.user_id]], true)));
  try {
    const content = await api(`${path}/content`);
    main.append(h("div", { class: "split" }, inputSection(content.input), outputSection(content)));
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) throw error;
    main.append(notice(`The input and output are no longer kept: ${error.message}`, "muted"));
  }
  main.append(await webhookSection(entry));
}

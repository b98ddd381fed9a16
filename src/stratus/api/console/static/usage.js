// Usage: spend and tokens per day and per model, from GET /v1/usage.

import { api } from "./api.js";
import { h, facts, field, fmt, options, table } from "./dom.js";
import { colorOf, stackedBars } from "./chart.js";

let days = "30";

function series(report, value) {
  return report.models.map((m, i) => ({
    name: m.model, color: colorOf(i),
    values: report.daily.map((day) => {
      const row = day.models.find((r) => r.model === m.model);
      return row ? value(row) : 0;
    }),
  }));
}

function swatch(index) {
  const el = h("span", { class: "swatch" });
  el.style.background = colorOf(index);
  return el;
}

function legend(report) {
  return h("ul", { class: "legend" }, report.models.map((m, i) =>
    h("li", {}, swatch(i), m.model)));
}

function chartCard(id, title, chart, report) {
  return h("section", { class: "card", id }, h("h2", { text: title }), chart, legend(report));
}

async function draw(body) {
  const report = await api(`/v1/usage?days=${days}`);
  const labels = report.daily.map((d) => d.date);
  const total = report.total;
  const tokens = (n) => (n >= 10000 ? `${(n / 1000).toFixed(0)}k` : fmt.int(Math.round(n)));
  const usd = (v) => `$${Number(v.toPrecision(3))}`;
  body.replaceChildren(
    h("section", { class: "card", id: "usage-totals" }, facts([
      ["Spend", fmt.usd(total.cost), "usage-spend-total"],
      ["Requests", fmt.int(total.requests), "usage-requests"],
      ["Failed", fmt.int(total.failed)],
      ["Input tokens", fmt.int(total.input_tokens)],
      ["Output tokens", fmt.int(total.output_tokens)],
      ["Span (UTC)", `${labels[0]} to ${labels[labels.length - 1]}`]], true)),
    h("div", { class: "split" },
      chartCard("usage-spend", "Spend per day (USD)",
                stackedBars({ labels, series: series(report, (r) => r.cost), format: usd,
                              title: "Spend per day by model" }), report),
      chartCard("usage-tokens", "Tokens per day (input + output)",
                stackedBars({ labels, format: tokens, title: "Tokens per day by model",
                              series: series(report, (r) => r.input_tokens + r.output_tokens) }),
                report)),
    h("section", { class: "card" }, h("h2", { text: "Per model" }),
      table("usage-models", ["Model", "Requests", "Failed", "Input tokens", "Output tokens",
                             "Spend"],
            report.models.map((m, i) => h("tr", { dataset: { model: m.model } },
              h("td", {}, swatch(i), m.model),
              h("td", { class: "num", text: fmt.int(m.requests) }),
              h("td", { class: "num", text: fmt.int(m.failed) }),
              h("td", { class: "num", text: fmt.int(m.input_tokens) }),
              h("td", { class: "num", text: fmt.int(m.output_tokens) }),
              h("td", { class: "num", text: fmt.usd(m.cost) }))))));
}

export async function render(main) {
  const span = h("select", { id: "usage-days" });
  options(span, [["7", "last 7 days"], ["30", "last 30 days"], ["90", "last 90 days"]], days);
  const body = h("div", { id: "usage-body" });
  span.addEventListener("change", () => {
    days = span.value;
    draw(body);
  });
  main.append(h("div", { class: "heading" }, h("h1", { text: "Usage" }), field("Span", span)),
              body);
  await draw(body);
}

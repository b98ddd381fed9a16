// Accounts (admin): every account's credits; one account's ledger, and credits added or set.

import { api, query } from "./api.js";
import { h, facts, field, fmt, notice, table } from "./dom.js";

function balance(credits) {
  return credits.unlimited ? "unlimited" : fmt.usd(credits.balance);
}

function accountRow(account) {
  const link = h("a", { href: `#/accounts/${encodeURIComponent(account.name)}`,
                        text: account.name });
  return h("tr", { dataset: { account: account.name } }, h("td", {}, link),
           h("td", { class: "num", text: balance(account.credits) }),
           h("td", { class: "num", text: fmt.usd(account.credits.reserved) }),
           h("td", { class: "num", text: account.credits.unlimited ? "unlimited"
             : fmt.usd(account.credits.available) }),
           h("td", { text: fmt.time(account.created_at) }));
}

async function renderList(main) {
  const accounts = await api("/v1/admin/accounts");
  main.append(h("h1", { text: "Accounts" }), h("section", { class: "card" },
    table("accounts-table", ["Account", "Balance", "Reserved", "Available", "Created"],
          accounts.data.map(accountRow))));
}

function ledgerRow(line) {
  const amount = line.amount === null ? "unlimited" : fmt.usd(line.amount);
  return h("tr", { dataset: { kind: line.kind } }, h("td", { text: fmt.time(line.created_at) }),
           h("td", { text: line.kind }), h("td", { class: "num", text: amount }),
           h("td", { class: "num", text: line.balance_after === null ? "unlimited"
             : fmt.usd(line.balance_after) }),
           h("td", { class: "mono", text: line.request_id ?? "" }), h("td", { text: line.note }));
}

async function loadLedger(name, body, more, after) {
  const page = await api(`/v1/admin/accounts/${encodeURIComponent(name)}/ledger` +
                         query({ limit: 50, after_id: after }));
  body.append(...page.data.map(ledgerRow));
  if (!body.children.length) {
    body.append(h("tr", {}, h("td", { colspan: 6, class: "muted", text: "No changes yet." })));
  }
  more.hidden = !page.has_more;
  more.onclick = () => loadLedger(name, body, more, page.last_id).catch(() => {});
}

function creditsForm(name, refresh) {
  const amount = h("input", { id: "credit-amount", type: "number", step: "any", required: true });
  const note = h("input", { id: "credit-note", placeholder: "invoice, refund, …" });
  const problem = h("div");
  const send = (method, body) => async () => {
    problem.replaceChildren();
    try {
      await api(`/v1/admin/accounts/${encodeURIComponent(name)}/credits`, { method, body });
      await refresh();
    } catch (error) {
      problem.replaceChildren(notice(error.message));
    }
  };
  const number = () => Number(amount.value);
  return h("form", { class: "card", id: "credits-form",
                     onsubmit: (event) => event.preventDefault() },
    h("h2", { text: "Credits" }),
    h("div", { class: "row" }, field("Amount (USD)", amount), field("Note", note)), problem,
    h("div", { class: "actions" },
      h("button", { type: "button", id: "add-credits", text: "Add",
                    onclick: () => send("POST", { amount: number(), note: note.value })() }),
      h("button", { type: "button", id: "set-balance", class: "quiet", text: "Set balance",
                    onclick: () => send("PUT", { balance: number(), note: note.value })() }),
      h("button", { type: "button", id: "set-unlimited", class: "quiet", text: "Make unlimited",
                    onclick: () => send("PUT", { balance: null, note: note.value })() })));
}

async function renderAccount(main, name) {
  const summary = h("div");
  const body = h("tbody");
  const more = h("button", { type: "button", class: "quiet", text: "Load more", hidden: true });
  const grid = table("ledger-table", ["When", "Kind", "Amount", "Balance after", "Request",
                                      "Note"], []);
  grid.querySelector("tbody").replaceWith(body);
  const refresh = async () => {
    const account = await api(`/v1/admin/accounts/${encodeURIComponent(name)}`);
    summary.replaceChildren(facts([
      ["Balance", balance(account.credits), "account-balance"],
      ["Reserved", fmt.usd(account.credits.reserved)],
      ["Available", account.credits.unlimited ? "unlimited" : fmt.usd(account.credits.available)],
      ["Webhook", account.webhook_url], ["Created", fmt.time(account.created_at)]]));
    body.replaceChildren();
    await loadLedger(name, body, more);
  };
  main.append(h("p", {}, h("a", { href: "#/accounts", text: "← Accounts" })),
              h("h1", { text: `Account ${name}` }),
              h("div", { class: "split" }, h("section", { class: "card" }, summary),
                creditsForm(name, refresh)),
              h("section", { class: "card" }, h("h2", { text: "Ledger" }), grid, more));
  await refresh();
}

export async function render(main, name) {
  if (name) await renderAccount(main, name);
  else await renderList(main);
}

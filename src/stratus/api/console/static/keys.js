// Keys (admin): every key with its scope and limits; create one (its secret is shown once)
// or revoke one.

import { api, session } from "./api.js";
import { h, field, fmt, notice, table } from "./dom.js";

function numberOrNull(input) {
  return input.value === "" ? null : Number(input.value);
}

function limits(key) {
  const { requests_per_minute: rpm, tokens_per_minute: tpm } = key.rate_limits;
  if (rpm === null && tpm === null) return "none";
  return [rpm === null ? null : `${fmt.int(rpm)} req/min`,
          tpm === null ? null : `${fmt.int(tpm)} tok/min`].filter(Boolean).join(", ");
}

// Revoking asks once more on the same button: a second click within a few seconds.
function revokeButton(key, reload, problem) {
  const own = key.id === session.account.key.id;
  const button = h("button", { type: "button", class: "danger", text: "Revoke",
                               dataset: { keyId: key.id } });
  button.addEventListener("click", async () => {
    if (button.dataset.confirm !== "yes") {
      button.dataset.confirm = "yes";
      button.textContent = own ? "Revoke the key you use?" : "Confirm revoke";
      setTimeout(() => {
        button.dataset.confirm = "";
        button.textContent = "Revoke";
      }, 5000);
      return;
    }
    button.disabled = true;
    try {
      await api(`/v1/admin/keys/${encodeURIComponent(key.id)}/revoke`, { method: "POST" });
      await reload();
    } catch (error) {
      problem.replaceChildren(notice(error.message));
      button.disabled = false;
    }
  });
  return button;
}

function keyRow(key, reload, problem) {
  const state = key.revoked_at
    ? h("span", { class: "status failed", text: "revoked" })
    : h("span", { class: "status completed", text: "active" });
  return h("tr", { dataset: { keyId: key.id, revoked: key.revoked_at ? "yes" : "no" } },
           h("td", { class: "mono", text: key.id }), h("td", { text: key.name || "—" }),
           h("td", { class: "mono", text: key.prefix }), h("td", { text: key.account }),
           h("td", { text: key.admin ? "admin" : "" }),
           h("td", { text: key.models ? key.models.join(", ") : "all" }),
           h("td", { text: limits(key) }), h("td", { text: fmt.time(key.created_at) }),
           h("td", {}, state),
           h("td", {}, key.revoked_at ? null : revokeButton(key, reload, problem)));
}

function createForm(models, onCreated) {
  const account = h("input", { id: "new-account", value: "default", required: true });
  const name = h("input", { id: "new-name", placeholder: "what it is for" });
  const admin = h("input", { id: "new-admin", type: "checkbox" });
  const scope = h("select", { id: "new-models", multiple: true, size: 4 },
                  models.map((id) => h("option", { value: id, text: id })));
  const rpm = h("input", { id: "new-rpm", type: "number", min: "1", placeholder: "no limit" });
  const tpm = h("input", { id: "new-tpm", type: "number", min: "1", placeholder: "no limit" });
  const credits = h("input", { id: "new-credits", type: "number", min: "0", step: "any",
                               placeholder: "unlimited" });
  const problem = h("div");
  const form = h("form", { class: "card", id: "create-key", onsubmit: async (event) => {
    event.preventDefault();
    problem.replaceChildren();
    const chosen = [...scope.selectedOptions].map((o) => o.value);
    try {
      const created = await api("/v1/admin/keys", { method: "POST", body: {
        account: account.value.trim(), name: name.value, admin: admin.checked,
        models: chosen.length ? chosen : null, requests_per_minute: numberOrNull(rpm),
        tokens_per_minute: numberOrNull(tpm), credits: numberOrNull(credits),
      } });
      form.reset();
      await onCreated(created);
    } catch (error) {
      problem.replaceChildren(notice(error.message));
    }
  } },
  h("h2", { text: "Create a key" }),
  h("div", { class: "columns" }, field("Account", account, "created if new"),
    field("Name", name), field("Credits (USD)", credits, "a new account's balance"),
    field("Models", scope, "none selected: every model"),
    field("Requests per minute", rpm, "empty: no limit"),
    field("Tokens per minute", tpm, "empty: no limit")),
  h("label", { class: "check" }, admin, " Admin key (may manage keys and accounts)"),
  problem, h("button", { id: "create-key-submit", type: "submit", text: "Create key" }));
  return form;
}

function secretBox(created) {
  const secret = h("code", { id: "new-secret", text: created.secret });
  return h("div", { class: "card secret", role: "status" },
           h("strong", { text: `Key ${created.key.id} created for account ` +
                               `${created.key.account}.` }),
           h("p", { text: "Copy its secret now: it is shown this once and cannot be read again." }),
           secret);
}

export async function render(main) {
  const models = await api("/v1/models");
  const ids = [...new Set(models.data.map((m) => m.id))];
  const problem = h("div");
  const shown = h("div", { id: "created" });
  const body = h("tbody");
  const reload = async () => {
    const keys = await api("/v1/admin/keys");
    body.replaceChildren(...keys.data.map((key) => keyRow(key, reload, problem)));
  };
  const grid = table("keys-table", ["Id", "Name", "Prefix", "Account", "Admin", "Models",
                                    "Rate limits", "Created", "State", ""], []);
  grid.querySelector("tbody").replaceWith(body);
  main.append(h("h1", { text: "Keys" }), shown,
              createForm(ids, async (created) => {
                shown.replaceChildren(secretBox(created));
                await reload();
              }),
              problem, h("section", { class: "card" }, h("h2", { text: "Every key" }), grid));
  await reload();
}

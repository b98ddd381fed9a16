// The console's shell: sign-in, navigation between pages, and who is signed in.

import { api, ApiError, session, whenSignedOut } from "./api.js";
import { h, field, fmt, notice } from "./dom.js";
import * as accounts from "./accounts.js";
import * as history from "./history.js";
import * as keys from "./keys.js";
import * as playground from "./playground.js";
import * as usage from "./usage.js";

// Each page: its module's render(main, argument), and whether it needs an admin key.
const PAGES = {
  playground: { render: playground.render },
  history: { render: history.render },
  requests: { render: history.renderEntry, nav: "history" },
  usage: { render: usage.render },
  keys: { render: keys.render, admin: true },
  accounts: { render: accounts.render, admin: true },
};

const main = document.getElementById("main");

function route() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const arg = rest.length ? decodeURIComponent(rest.join("/")) : null;
  return { name: PAGES[name] ? name : "playground", arg };
}

function showSignedIn() {
  const account = session.account;
  const nav = document.getElementById("nav");
  nav.hidden = false;
  for (const link of nav.querySelectorAll("[data-admin]")) link.hidden = !session.admin;
  const credits = account.credits.unlimited ? "unlimited credits"
    : `${fmt.usd(account.credits.available)} available`;
  const who = [h("strong", { text: account.name }), ` · ${account.key.prefix} · ${credits}`];
  if (session.admin) who.push(h("span", { class: "badge", text: "admin" }));
  document.getElementById("who").replaceChildren(...who);
  document.getElementById("sign-out").hidden = false;
}

function showSignedOut() {
  document.getElementById("nav").hidden = true;
  document.getElementById("who").replaceChildren();
  document.getElementById("sign-out").hidden = true;
}

let drawn = 0; // renders started: only the latest one is shown

function show(name, view) {
  main.replaceChildren(...view.childNodes);
  main.dataset.page = name;
}

async function render() {
  if (!session.account) return renderSignIn();
  const ticket = ++drawn;
  try {
    session.account = await api("/v1/account"); // fresh credits; a revoked key ends here
  } catch {
    if (!session.account) return undefined;
  }
  if (ticket !== drawn) return undefined;
  showSignedIn();
  const { name, arg } = route();
  const page = PAGES[name];
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.page === (page.nav ?? name));
  }
  const view = document.createElement("div");
  if (page.admin && !session.admin) {
    view.append(h("h1", { text: "Admin only" }), notice(
      "This page needs an admin key: the key you signed in with is not one. " +
      "An admin can create keys and manage accounts here."));
  } else {
    try {
      await page.render(view, arg);
    } catch (error) {
      view.append(notice(error instanceof ApiError ? error.message : String(error)));
    }
  }
  if (ticket === drawn && session.account) show(name, view);
  return undefined;
}

function renderSignIn(message) {
  drawn += 1;
  showSignedOut();
  main.dataset.page = "sign-in";
  const input = h("input", { id: "api-key", type: "password", autocomplete: "off",
                             spellcheck: "false", placeholder: "sk-stratus-…", required: true });
  const error = h("p", { id: "sign-in-error", class: "error", role: "alert",
                         hidden: !message, text: message ?? "" });
  const button = h("button", { id: "sign-in", type: "submit", text: "Sign in" });
  const form = h("form", { class: "card narrow", onsubmit: async (event) => {
    event.preventDefault();
    button.disabled = true;
    error.hidden = true;
    try {
      await signIn(input.value.trim());
    } catch (failure) {
      error.textContent = failure.status === 401
        ? `This key was refused: ${failure.message}`
        : `Could not sign in: ${failure.message}`;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  } },
  h("h1", { text: "Sign in" }),
  h("p", { class: "muted", text: "Use a Stratus API key. It is kept in this browser tab only " +
           "and sent to this server's API with each request." }),
  field("API key", input), error, button);
  main.replaceChildren(form);
  input.focus();
}

async function signIn(key) {
  const account = await api("/v1/account", { key });
  session.start(key, account);
  showSignedIn();
  if (!location.hash || location.hash === "#/") location.hash = "#/playground";
  else render();
}

document.getElementById("sign-out").addEventListener("click", () => {
  session.end();
  renderSignIn();
});
whenSignedOut((message) => {
  session.end();
  renderSignIn(`Signed out: ${message}`);
});
window.addEventListener("hashchange", render);

async function start() {
  const key = session.key;
  if (!key) return renderSignIn();
  try {
    await signIn(key);
  } catch (error) {
    session.end();
    renderSignIn(error.status === 401 ? `This key was refused: ${error.message}` : undefined);
  }
}

start();

// Building the page: elements from data (text only, never parsed as HTML) and formats.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  el.append(...flat(children));
  return el;
}

function flat(children) {
  const out = [];
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) out.push(...flat(child));
    else out.push(child instanceof Node ? child : String(child));
  }
  return out;
}

export function field(label, control, hint) {
  return h("label", { class: "field" }, h("span", { text: label }), control,
           hint ? h("small", { class: "muted", text: hint }) : null);
}

export function facts(pairs, wide = false) {
  const dl = h("dl", { class: wide ? "facts wide" : "facts" });
  for (const [term, value, id] of pairs) {
    dl.append(h("dt", { text: term }),
              h("dd", { id, text: value === null || value === undefined ? "—" : value }));
  }
  return dl;
}

export function table(id, headings, rows) {
  return h("table", { id, class: "grid" },
           h("thead", {}, h("tr", {}, headings.map((t) => h("th", { text: t })))),
           h("tbody", {}, rows));
}

export function notice(text, kind = "error") {
  return h("p", { class: kind, role: kind === "error" ? "alert" : "status", text });
}

export function options(select, values, chosen) {
  select.replaceChildren(...values.map(([value, label]) =>
    h("option", { value, text: label ?? value, selected: value === chosen })));
}

export const fmt = {
  usd(value) {
    if (value === null || value === undefined) return "—";
    const digits = value !== 0 && Math.abs(value) < 0.01 ? 6 : 2;
    return (value < 0 ? "−$" : "$") + Math.abs(value).toFixed(digits);
  },
  int(value) {
    return value === null || value === undefined ? "—" : value.toLocaleString("en-US");
  },
  ms(value) {
    if (value === null || value === undefined) return "—";
    return value >= 1000 ? (value / 1000).toFixed(2) + " s" : Math.round(value) + " ms";
  },
  time(iso) {
    if (!iso) return "—";
    const at = new Date(iso);
    return at.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  },
};

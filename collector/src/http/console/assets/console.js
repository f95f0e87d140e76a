// The console's script: signs in, then draws pages from the JSON API (docs/API.md).
// No framework and no inline code, so the Content-Security-Policy can forbid both.
"use strict";

const csrfKey = "vigil-csrf";

async function api(method, path, body) {
  const headers = { "accept": "application/json" };
  if (method !== "GET") {
    headers["x-csrf-token"] = sessionStorage.getItem(csrfKey) || "";
  }
  if (body !== undefined) {
    headers["content-type"] = "application/json";
  }
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && document.body.dataset.page !== "sign-in") {
    location.assign("/sign-in");
    throw new Error("not signed in");
  }
  const answer = response.status === 204 ? {} : await response.json();
  if (!response.ok) {
    throw new Error(answer.error || ("HTTP " + response.status));
  }
  return answer;
}

function element(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    node.setAttribute(name, value);
  }
  for (const child of children) {
    node.append(child === null || child === undefined ? "" : child);
  }
  return node;
}

function ago(ms) {
  if (!ms) return "-";
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (seconds < 90) return seconds + " s ago";
  if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
  if (seconds < 172800) return Math.round(seconds / 3600) + " h ago";
  return Math.round(seconds / 86400) + " d ago";
}

const severityRank = { emergency: 4, critical: 3, warning: 2, notice: 1 };

function signInPage() {
  const form = document.getElementById("sign-in-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("sign-in-error");
    error.textContent = "";
    try {
      const session = await api("POST", "/api/v1/sign-in", {
        name: document.getElementById("name").value,
        password: document.getElementById("password").value,
      });
      sessionStorage.setItem(csrfKey, session.csrf_token);
      // Back to the alert or acknowledge link that asked for signing in; nowhere else.
      const next = new URLSearchParams(location.search).get("next") || "";
      location.assign(/^\/(ack|alerts)\/[A-Za-z0-9._~-]+$/.test(next) ? next : "/");
    } catch (failure) {
      error.textContent = failure.message;
    }
  });
}

// The header every signed-in page shares: who is signed in, and signing out. Keeps the
// session's CSRF token at hand for the changes the page makes.
async function signedIn() {
  const session = await api("GET", "/api/v1/session");
  if (session.csrf_token) {
    sessionStorage.setItem(csrfKey, session.csrf_token);
  }
  document.getElementById("who").textContent = session.name + " (" + session.role + ")";
  document.getElementById("sign-out").addEventListener("click", async () => {
    await api("DELETE", "/api/v1/session");
    sessionStorage.removeItem(csrfKey);
    location.assign("/sign-in");
  });
  return session;
}

// Pages drawn on the server (host, alerts, client): acknowledging from an alert table.
async function serverPage() {
  await signedIn();
  liveAlerts();
  const link = document.getElementById("ack-link-form");
  if (link) {
    link.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = link.querySelector("button");
      button.disabled = true;
      try {
        const note = link.elements.note.value.trim();
        const alert = await api("POST", "/api/v1/ack-links/" + encodeURIComponent(link.dataset.token),
          note ? { note } : {});
        link.hidden = true;
        const done = document.getElementById("ack-done");
        done.textContent = "Acknowledged by " + alert.acknowledged_by + ", " + alert.response + ".";
        done.hidden = false;
      } catch (failure) {
        button.disabled = false;
        document.getElementById("error").textContent = failure.message;
      }
    });
  }
  for (const form of document.querySelectorAll("form.ack")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        const note = form.elements.note.value.trim();
        await api("POST", "/api/v1/alerts/" + encodeURIComponent(form.dataset.alert) + "/ack",
          note ? { note } : {});
        location.reload();
      } catch (failure) {
        button.disabled = false;
        document.getElementById("error").textContent = failure.message;
      }
    });
  }
}

async function overviewPage() {
  await signedIn();
  const filter = document.getElementById("filter");
  let hosts = [];
  const draw = () => {
    const wanted = filter.value.trim().toLowerCase();
    const shown = hosts.filter((host) => !wanted ||
      [host.host, host.client, host.state, host.os || ""].some((text) => text.toLowerCase().includes(wanted)));
    const byClient = new Map();
    for (const host of shown) {
      if (!byClient.has(host.client)) byClient.set(host.client, []);
      byClient.get(host.client).push(host);
    }
    const worst = (list) => Math.max(0, ...list.map((h) => severityRank[h.worst_severity] || 0));
    const clients = [...byClient.entries()].sort((a, b) =>
      worst(b[1]) - worst(a[1]) || a[0].localeCompare(b[0]));
    const container = document.getElementById("clients");
    container.replaceChildren(...clients.map(([client, list]) => {
      list.sort((a, b) => (severityRank[b.worst_severity] || 0) - (severityRank[a.worst_severity] || 0)
        || a.host.localeCompare(b.host));
      const rows = list.map((host) => element("tr", { "data-host": host.host },
        element("td", {}, element("a", { href: "/hosts/" + encodeURIComponent(host.host) }, host.host)),
        element("td", { class: "state state-" + host.state.replace(/ /g, "-") }, host.state),
        element("td", {}, ago(host.last_data_ms)),
        element("td", {}, host.worst_severity
          ? element("span", { class: "severity-" + host.worst_severity },
            host.worst_severity + " (" + host.open_alerts + ")")
          : "-"),
        element("td", {}, host.os || "-"),
        element("td", {}, host.agent_version || "-")));
      return element("section", { class: "client", "data-client": client },
        element("h2", {}, element("a", { href: "/clients/" + encodeURIComponent(client) }, client), " · " + list.length + " host" + (list.length === 1 ? "" : "s") + " · ",
          element("a", { href: "/clients/" + encodeURIComponent(client) + "/reports", class: "client-reports" }, "Reports")),
        element("table", {},
          element("thead", {}, element("tr", {},
            ...["Host", "State", "Last data", "Worst open alert", "OS", "Agent"].map((title) => element("th", {}, title)))),
          element("tbody", {}, ...rows)));
    }));
    document.getElementById("summary").textContent =
      shown.length + " of " + hosts.length + " hosts, " +
      shown.filter((h) => h.state === "online").length + " online";
  };
  filter.addEventListener("input", draw);
  const refresh = async () => {
    try {
      hosts = (await api("GET", "/api/v1/hosts")).hosts;
      document.getElementById("error").textContent = "";
      draw();
    } catch (failure) {
      document.getElementById("error").textContent = failure.message;
    }
  };
  await refresh();
  setInterval(refresh, 10000);
  // Live: any alert or presence change redraws the overview from the API.
  const live = new EventSource("/events");
  live.addEventListener("alert", refresh);
  live.addEventListener("presence", refresh);
}

// Live updates on the alert list: a known row's state changes in place; a new alert or a
// closed one redraws the list.
function liveAlerts() {
  if (location.pathname !== "/alerts") return;
  const live = new EventSource("/events");
  live.addEventListener("alert", (event) => {
    const alert = JSON.parse(event.data);
    const row = document.querySelector('tr[data-alert="' + CSS.escape(alert.id) + '"]');
    if (row && alert.state !== "closed") {
      row.dataset.state = alert.state;
      row.querySelector(".alert-state").textContent = alert.state;
    } else if (row || alert.state !== "closed") {
      location.reload();
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "sign-in") signInPage();
  const failed = (failure) => {
    document.getElementById("error").textContent = failure.message;
  };
  if (page === "overview") overviewPage().catch(failed);
  if (page === "server") serverPage().catch(failed);
});

import { subscribe as farmSubscribe } from "/farmlb.js";
import { FarmChart } from "/dashboard/chart.js";

// The farm dashboard: polls GET /farm on this node once a second and shows
// every node's status, priority group and users; subscribes to a stream to
// show the data path. Plain JavaScript, no build step, nothing fetched from
// elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);

function row(s, total) {
  const tr = document.createElement("tr");
  const share = total > 0 ? s.users / total : 0;
  const cap = s.capacity ? " / " + s.capacity : "";
  const cells = [
    s.name, s.priority, s.status, String(s.users) + cap, "", s.url,
    s.reason || "", // why the node chose its status: drain, health:NAME, overload:SIGNAL
  ];
  cells.forEach((text, i) => {
    const td = document.createElement("td");
    if (i === 2) td.className = s.status;
    if (i === 3) td.className = "num";
    if (i === 4) {
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = Math.round(share * 200) + "px";
      td.appendChild(bar);
    } else if (i === 5) {
      const a = document.createElement("a");
      a.href = text;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    tr.appendChild(td);
  });
  return tr;
}

async function refresh() {
  try {
    const res = await fetch("/farm", { cache: "no-store" });
    if (!res.ok) throw new Error("GET /farm: " + res.status);
    const list = await res.json();
    $("service").textContent = list.service || "";
    $("reporter").textContent = list.reporter || "?";
    $("updated").textContent = new Date(list.generated_at).toLocaleTimeString();
    const total = list.servers.reduce((n, s) => n + s.users, 0);
    const body = $("farm").tBodies[0];
    body.replaceChildren(...list.servers.map((s) => row(s, total)));
    $("error").textContent = "";
  } catch (e) {
    $("error").textContent = String(e);
  }
}

// The live stream goes through farmlb.js, as a client page would: it picks a
// node from the farm list (not necessarily this one), fails over and resumes.
let sub = null;

function subscribe(ev) {
  if (ev) ev.preventDefault();
  if (sub) sub.close();
  const topics = $("topics").value.split(",").map((t) => t.trim()).filter(Boolean);
  $("events").replaceChildren();
  if (topics.length === 0) return;
  const show = (text) => {
    const li = document.createElement("li");
    li.textContent = new Date().toLocaleTimeString() + "  " + text;
    const list = $("events");
    list.prepend(li);
    while (list.children.length > 100) list.lastChild.remove();
  };
  sub = farmSubscribe({
    topics,
    onEvent: (e) => show((e.reset ? "farmlb-reset " : e.topic + " ") + e.data),
    onStatus: (st) => {
      $("streaminfo").textContent = st.state === "streaming"
        ? `streaming ${topics.join(", ")} from ${st.node} (chosen by farmlb.js)`
        : `${st.state}${st.node ? " " + st.node : ""}${st.reason ? ": " + st.reason : ""}`;
    },
  });
}

$("sub").addEventListener("submit", subscribe);
refresh();
setInterval(refresh, 1000);
subscribe();

// The farm over time (chart.js), from this node's GET /farm/timeline.
const chart = new FarmChart($("timeline"));
window.farmChart = chart;
const redraw = () => chart.update().catch((e) => ($("error").textContent = String(e)));
$("span").addEventListener("change", () => {
  chart.spanMs = Number($("span").value) * 60000;
  chart.draw();
});
redraw();
setInterval(redraw, 1000);

// stock.mjs — the npm `eventsource` package, used as anyone would use it,
// for the Go test webclient/stock_test.go. It streams URL and prints one
// JSON line per thing it sees on stdout:
//   {"kind":"open"} | {"kind":"message","id","data"} | {"kind":"named","event","id","data"} | {"kind":"error","message"}
// Usage: node stock.mjs URL [LAST-EVENT-ID] [NAMED-TOPIC...]
//   LAST-EVENT-ID  sent as the Last-Event-ID header of the first request
//                  (through the package's fetch option), to resume where
//                  another connection — to another node — stopped
//   NAMED-TOPIC    also listen with addEventListener(NAMED-TOPIC)
import { EventSource } from "eventsource";

const [url, lastID = "", ...named] = process.argv.slice(2);
const out = (v) => process.stdout.write(JSON.stringify(v) + "\n");
let first = true;
const es = new EventSource(url, {
  fetch: (input, init) => {
    const headers = { ...init.headers };
    if (first && lastID) headers["Last-Event-ID"] = lastID;
    first = false;
    return fetch(input, { ...init, headers });
  },
});
es.onopen = () => out({ kind: "open" });
es.onmessage = (e) => out({ kind: "message", id: e.lastEventId, data: e.data });
es.onerror = (e) => out({ kind: "error", message: String(e?.message ?? "") });
for (const t of named) es.addEventListener(t, (e) => out({ kind: "named", event: t, id: e.lastEventId, data: e.data }));
process.on("SIGTERM", () => {
  es.close();
  process.exit(0);
});

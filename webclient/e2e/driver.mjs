// driver.mjs — headless Chromium for the Go end-to-end test
// (webclient/e2e_test.go). It reads one JSON command per line on stdin and
// answers each with one JSON line on stdout:
//   {"op":"open","url":U}              → {"ok":true}
//   {"op":"eval","js":EXPR}            → {"ok":true,"value":V}   (EXPR evaluated in the page)
//   {"op":"screenshot","url":U,"path":P} → {"ok":true}             (a second page, full size)
//   {"op":"shot","path":P}             → {"ok":true}             (the open page, as it is now)
//   {"op":"quit"}
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
// A loaded CI machine can be slow: two minutes for any one step.
const STEP_MS = 120000;
const page = await browser.newPage();
page.setDefaultTimeout(STEP_MS);
const consoleLines = [];
page.on("console", (m) => consoleLines.push(m.text()));
page.on("pageerror", (e) => consoleLines.push("pageerror: " + e.message));

const reply = (v) => process.stdout.write(JSON.stringify(v) + "\n");
for await (const line of createInterface({ input: process.stdin })) {
  let cmd;
  try {
    cmd = JSON.parse(line);
    switch (cmd.op) {
      case "open":
        await page.goto(cmd.url, { waitUntil: "load" });
        reply({ ok: true });
        break;
      case "eval":
        reply({ ok: true, value: await page.evaluate(cmd.js) });
        break;
      case "screenshot": {
        const p = await browser.newPage({ viewport: { width: 1100, height: 700 } });
        p.setDefaultTimeout(STEP_MS);
        await p.goto(cmd.url, { waitUntil: "load" });
        await p.waitForTimeout(cmd.waitMs ?? 1500);
        // The viewport, not the full page: the event list keeps growing.
        await p.screenshot({ path: cmd.path, animations: "disabled" });
        await p.close();
        reply({ ok: true });
        break;
      }
      case "shot":
        await page.setViewportSize({ width: 1100, height: 900 });
        await page.screenshot({ path: cmd.path, animations: "disabled" });
        reply({ ok: true });
        break;
      case "console":
        reply({ ok: true, value: consoleLines });
        break;
      case "quit":
        await browser.close();
        process.exit(0);
      default:
        reply({ ok: false, error: "unknown op " + cmd.op });
    }
  } catch (e) {
    reply({ ok: false, error: String(e?.message ?? e) });
  }
}
await browser.close();

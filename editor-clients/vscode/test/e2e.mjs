// End-to-end: the packaged extension in a real VS Code (code-server) driven by headless Chromium,
// talking to the real completer server and engine. Types in a Python file, waits for the ghost
// text, takes a screenshot, accepts it with Tab, saves, and checks the file on disk holds it.
//
//   node test/e2e.mjs --vsix completer.vsix --code-server /path/to/code-server
//
// Environment: COMPLETER_PYTHON (default: the repository's .venv/bin/python),
// COMPLETER_SCREENSHOT (default: docs/screenshots/vscode.png), CHROMIUM (default: /usr/bin/chromium).
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../..");
const { values: args } = parseArgs({
  options: { vsix: { type: "string" }, "code-server": { type: "string" }, keep: { type: "boolean" } },
});
const python = process.env.COMPLETER_PYTHON || path.join(repo, ".venv/bin/python");
const screenshot = process.env.COMPLETER_SCREENSHOT || path.join(repo, "docs/screenshots/vscode.png");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const ENGINE_READY_MS = 300_000; // cold imports + loading both models on 2 cores
const SUGGESTION_MS = 30_000;

const started = Date.now();
const log = (msg) => console.log(`[e2e ${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);

const SOURCE = [
  "def fibonacci(n):",
  '    """Return the n-th Fibonacci number (fibonacci(0) == 0, fibonacci(1) == 1)."""',
  "    ",
  "",
  "",
  "print(fibonacci(10))",
  "",
].join("\n");
const TYPED = "if";

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

async function waitFor(what, timeoutMs, probe) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

// Every process this run starts carries this marker in its environment, so that cleanup can end
// exactly those (code-server keeps its extension host, and so the language server, alive after
// the browser leaves).
const marker = `COMPLETER_VSCODE_E2E=${process.pid}-${started}`;

function ourProcesses() {
  const pids = [];
  for (const entry of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${entry}/environ`, "latin1").split("\0").includes(marker)) pids.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

async function stopOurProcesses() {
  // SIGTERM first: the language server then shuts the vLLM engine down itself
  for (const signal of ["SIGTERM", "SIGKILL"]) {
    for (const pid of ourProcesses()) {
      try { process.kill(pid, signal); } catch { /* already gone */ }
    }
    const until = Date.now() + 15_000;
    while (ourProcesses().length && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
    if (!ourProcesses().length) return;
  }
}

async function main() {
  if (!args.vsix || !args["code-server"]) throw new Error("usage: e2e.mjs --vsix FILE --code-server BIN");
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "completer-vscode-e2e-"));
  const userData = path.join(tmp, "user-data");
  const extensions = path.join(tmp, "extensions");
  const workspace = path.join(tmp, "workspace");
  fs.mkdirSync(path.join(userData, "User"), { recursive: true });
  fs.mkdirSync(workspace);
  const file = path.join(workspace, "fib.py");
  fs.writeFileSync(file, SOURCE);
  fs.writeFileSync(path.join(userData, "User", "settings.json"), JSON.stringify({
    "completer.pythonPath": python,
    "completer.max_tokens": 64,
    "telemetry.telemetryLevel": "off",
    "update.mode": "none",
    "extensions.autoCheckUpdates": false,
    "extensions.autoUpdate": false,
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": false,
    "workbench.enableExperiments": false,
    "security.workspace.trust.enabled": false,
    "editor.inlineSuggest.enabled": true,
    // only the ghost text: no suggest widget that could take the Tab
    "editor.quickSuggestions": { other: false, comments: false, strings: false },
    "editor.suggestOnTriggerCharacters": false,
    "files.trimTrailingWhitespace": false,
    "files.insertFinalNewline": false,
  }, null, 2));

  const env = { ...process.env, [marker.split("=")[0]]: marker.split("=")[1] };
  fs.writeFileSync(path.join(tmp, "config.yaml"), "");  // not ~/.config/code-server
  const dirs = ["--config", path.join(tmp, "config.yaml"), "--user-data-dir", userData, "--extensions-dir", extensions];
  log(`installing ${args.vsix}`);
  execFileSync(args["code-server"], [...dirs, "--install-extension", path.resolve(args.vsix)], { env, stdio: "inherit" });

  const port = await freePort();
  const csLog = fs.openSync(path.join(tmp, "code-server.log"), "w");
  log(`code-server on 127.0.0.1:${port} (log: ${tmp}/code-server.log)`);
  spawn(args["code-server"], [...dirs, "--auth", "none", "--bind-addr", `127.0.0.1:${port}`,
    "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
    "--disable-getting-started-override", "--ignore-last-opened", workspace],
  { env, stdio: ["ignore", csLog, csLog] });
  const base = `http://127.0.0.1:${port}`;
  await waitFor("code-server", 60_000, async () => (await fetch(`${base}/healthz`)).ok);

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
    env,
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  try {
    await page.goto(`${base}/?folder=${encodeURIComponent(workspace)}`);
    await page.locator(".monaco-workbench").waitFor({ timeout: 60_000 });
    log("workbench loaded");

    // open fib.py through Quick Open
    const status = page.locator(".statusbar-item[id*=\"completer.status\"]");
    await status.first().waitFor({ timeout: 60_000 });
    await page.locator(".monaco-workbench").click({ position: { x: 600, y: 300 } });
    await page.keyboard.press("Control+P");
    await page.locator(".quick-input-widget input").fill("fib.py");
    await page.locator(".quick-input-list .monaco-list-row", { hasText: "fib.py" }).first().waitFor();
    await page.keyboard.press("Enter");
    const editor = page.locator(".editor-instance .monaco-editor").first();
    await editor.locator(".view-lines", { hasText: "fibonacci" }).waitFor({ timeout: 30_000 });
    log("fib.py open");

    log("waiting for the engine (status bar)");
    await waitFor("the engine to be ready", ENGINE_READY_MS, async () => {
      const text = await status.first().innerText();
      if (/failed/.test(text)) throw new Error(`engine failed: ${await status.first().getAttribute("aria-label")}`);
      return /ready|\d s/.test(text);
    });
    log(`engine ready: ${await status.first().innerText()}`);

    // the empty indented body line, at its end
    await page.keyboard.press("Control+G");
    await page.locator(".quick-input-widget input").fill(":3:5");
    await page.keyboard.press("Enter");
    await page.keyboard.type(TYPED, { delay: 50 });
    log(`typed ${JSON.stringify(TYPED)}; waiting for the ghost text`);
    const ghost = editor.locator(".ghost-text-decoration, .ghost-text");
    await ghost.first().waitFor({ timeout: SUGGESTION_MS }).catch(async () => {
      // typing asks once; should that answer have been lost, ask again as a user would (Alt+\)
      log("no suggestion yet; triggering one (editor.action.inlineSuggest.trigger)");
      await page.keyboard.press("Alt+Backslash");
      await ghost.first().waitFor({ timeout: 2 * SUGGESTION_MS });
    });
    await page.waitForTimeout(300); // let the multi-line part render too
    // the first line's ghost text comes in spans (one per token colour), further lines in a view zone
    const firstLine = (await editor.locator(".ghost-text-decoration").allInnerTexts()).join("");
    const moreLines = await editor.locator(".ghost-text").evaluateAll((spans) => {
      const lines = new Map();
      for (const span of spans) {
        const line = span.closest(".view-line") ?? span.parentElement;
        lines.set(line, (lines.get(line) ?? "") + span.textContent);
      }
      return [...lines.values()];
    });
    const shown = [firstLine, ...moreLines].join("\n").replace(/\u00a0/g, " ");
    log(`suggestion shown: ${JSON.stringify(shown)}`);
    fs.mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot });
    log(`screenshot: ${screenshot}`);

    await page.keyboard.press("Tab");
    await page.keyboard.press("Control+S");
    // (after the accept a next suggestion may show at once; it is not part of the file)
    const squash = (text) => text.replace(/\s+/g, " ").trim();
    const expected = squash(`${TYPED}${shown}`);
    const saved = await waitFor("fib.py to be saved with the suggestion", 15_000, async () => {
      const text = fs.readFileSync(file, "utf8");
      return squash(text).includes(expected) && text;
    }).catch((err) => {
      throw new Error(`${err.message}; on disk:\n${fs.readFileSync(file, "utf8")}`);
    });
    log(`saved:\n${saved}`);

    // the accept command reached the server: completer.showStats reports it
    await page.keyboard.press("F1");
    await page.locator(".quick-input-widget input").fill(">completer: Show Stats");
    await page.locator(".quick-input-list .monaco-list-row", { hasText: "Show Stats" }).first().waitFor();
    await page.keyboard.press("Enter");
    const toast = page.locator(".notification-toast", { hasText: "accepted" });
    const message = await toast.first().innerText({ timeout: 15_000 });
    log(`stats: ${message.replace(/\n/g, " ")}`);
    if (!/suggestions: 1 accepted/.test(message)) throw new Error(`the server did not count the accept: ${message}`);
    // ... with the suggestion's id: its per-request record is marked accepted, so a plan counts it
    if (!/by plan: .*\b[1-9]\d*\/\d+/.test(message)) throw new Error(`the accept carried no known id: ${message}`);
    log(`status bar: ${await status.first().innerText()}`);
    log("PASS");
  } catch (err) {
    const shot = path.join(os.tmpdir(), "completer-vscode-e2e-failure.png");
    await page.screenshot({ path: shot }).catch(() => undefined);
    log(`screen at the failure: ${shot}`);
    throw err;
  } finally {
    await browser.close();
    await stopOurProcesses();
    if (!args.keep) fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch(async (err) => {
  console.error(`[e2e] FAIL: ${err.stack || err}`);
  await stopOurProcesses();
  process.exit(1);
});

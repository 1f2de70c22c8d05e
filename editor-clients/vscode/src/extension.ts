// The completer client: starts `<python> -m completer serve`, forwards the settings, shows
// inline completions from the server, reports accepted and dismissed ones (with the server's id
// of each suggestion) and shows the server's stats.
import * as fs from "fs";
import * as vscode from "vscode";
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State,
} from "vscode-languageclient/node";
import { resolvePython } from "./python";
import { serverSettings } from "./settings";
import {
  acceptedCommand, acceptedParams, dismissedParams, EDITOR_ACCEPTED_COMMAND, ShownSuggestions, suggestionId,
} from "./feedback";
import { isLoading, Stats, statusText, statusTooltip } from "./status";

const STATS_REQUEST = "completer/stats";
const ACCEPTED_NOTIFICATION = "completer/accepted";
const DISMISSED_NOTIFICATION = "completer/dismissed";
const DISMISS_COMMAND = "completer.dismiss"; // hides the suggestion on screen and reports it
const POLL_MS = 2000; // while the engine loads, so that the status bar says when it is ready

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let status: vscode.StatusBarItem;
let lastStats: Stats | undefined;
let poll: NodeJS.Timeout | undefined;
let pollUntil = 0; // keep polling until then even if the engine says ready (it may be about to reload)
const shown = new ShownSuggestions(); // ours on screen, per document, for completer.dismiss

function config(): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration("completer");
}

function pythonPath(context: vscode.ExtensionContext): string {
  const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
  // in a checkout, editor-clients/vscode → the repository's .venv
  return resolvePython(config().get<string>("pythonPath"), [...folders, context.extensionPath], fs.existsSync);
}

async function refreshStats(): Promise<Stats | undefined> {
  if (!client || client.state !== State.Running) {
    lastStats = undefined;
  } else {
    try {
      lastStats = await client.sendRequest<Stats>(STATS_REQUEST, {});
    } catch (err) {
      output.appendLine(`completer/stats failed: ${err}`);
    }
  }
  status.text = statusText(lastStats);
  status.tooltip = statusTooltip(lastStats);
  const loading = isLoading(lastStats) || (client?.state === State.Running && Date.now() < pollUntil);
  if (loading && !poll) poll = setInterval(() => void refreshStats(), POLL_MS);
  if (!loading && poll) {
    clearInterval(poll);
    poll = undefined;
  }
  return lastStats;
}

async function startClient(context: vscode.ExtensionContext): Promise<void> {
  const python = pythonPath(context);
  output.appendLine(`starting: ${python} -m completer serve`);
  const serverOptions: ServerOptions = { command: python, args: ["-m", "completer", "serve"] };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
    outputChannel: output,
    initializationOptions: serverSettings((key) => config().get(key)),
    middleware: {
      // Ghost text only: a textDocument/completion request would run a second generation per
      // keystroke, and the server keeps only the latest request per document, so it would
      // cancel the inline one.
      provideCompletionItem: () => undefined,
      // The built-in inline completion feature sends textDocument/inlineCompletion with the
      // token (so VS Code's cancellation becomes $/cancelRequest); here each item's command (the
      // server's, carrying its id) becomes the extension's, with the text shown added, the first
      // item is remembered for completer.dismiss, and the status bar is refreshed.
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        const version = document.version; // the answer is for this version, even if it changes meanwhile
        const result = await next(document, position, context, token);
        const items = Array.isArray(result) ? result : result?.items ?? [];
        const suggestions = items.map((item) => {
          const text = typeof item.insertText === "string" ? item.insertText : item.insertText.value;
          const suggestion = { id: suggestionId(item.command), uri: document.uri.toString(), text };
          item.command = acceptedCommand(suggestion);
          return suggestion;
        });
        if (!token.isCancellationRequested) {
          // an empty answer leaves nothing of ours to dismiss
          shown.show(document.uri.toString(), version, position, suggestions[0]);
          void refreshStats();
        }
        return result;
      },
    },
  };
  client = new LanguageClient("completer", "completer", serverOptions, clientOptions);
  client.onDidChangeState(() => void refreshStats()); // a crashed server is restarted by the client
  try {
    await client.start();
  } catch (err) {
    void vscode.window.showErrorMessage(`completer: the server did not start with ${python}: ${err}`);
  }
  await refreshStats();
}

async function restartClient(context: vscode.ExtensionContext): Promise<void> {
  const old = client;
  client = undefined;
  if (old) await old.stop().catch(() => undefined);
  await startClient(context);
}

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  output = vscode.window.createOutputChannel("completer", { log: true });
  status = vscode.window.createStatusBarItem("completer.status", vscode.StatusBarAlignment.Right, 100);
  status.name = "completer";
  status.command = "completer.showStats";
  status.show();
  context.subscriptions.push(output, status, { dispose: () => poll && clearInterval(poll) });

  context.subscriptions.push(
    vscode.commands.registerCommand(EDITOR_ACCEPTED_COMMAND, async (arg: unknown) => {
      const params = acceptedParams(arg);
      if (!params) return;
      shown.forget(params.uri);
      await client?.sendNotification(ACCEPTED_NOTIFICATION, params);
      await refreshStats();
    }),
    // Bound to Escape while a suggestion is visible: VS Code's API has no event for a dismissal.
    // Escape may hide another provider's suggestion, or ours after the user moved on: only ours, at
    // the version and cursor it still stands at, is reported.
    vscode.commands.registerCommand(DISMISS_COMMAND, async () => {
      const editor = vscode.window.activeTextEditor;
      const suggestion = editor
        && shown.dismiss(editor.document.uri.toString(), editor.document.version, editor.selections);
      await vscode.commands.executeCommand("editor.action.inlineSuggest.hide");
      if (suggestion) {
        await client?.sendNotification(DISMISSED_NOTIFICATION, dismissedParams(suggestion));
        await refreshStats();
      }
    }),
    vscode.workspace.onDidChangeTextDocument((event) =>
      shown.changed(event.document.uri.toString(), event.document.version, event.contentChanges)),
    vscode.window.onDidChangeTextEditorSelection((event) => {
      // a second editor of the same document moves its cursor when this one types
      if (event.textEditor !== vscode.window.activeTextEditor) return;
      shown.selected(event.textEditor.document.uri.toString(), event.selections);
    }),
    vscode.window.onDidChangeActiveTextEditor(() => shown.clear()),
    vscode.workspace.onDidCloseTextDocument((document) => shown.forget(document.uri.toString())),
    vscode.commands.registerCommand("completer.showStats", async () => {
      const stats = await refreshStats();
      output.appendLine(`completer/stats ${JSON.stringify(stats ?? null, null, 2)}`);
      void vscode.window.showInformationMessage(statusTooltip(stats).split("\n").join(" · "));
    }),
    vscode.commands.registerCommand("completer.restartServer", () => restartClient(context)),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (!event.affectsConfiguration("completer")) return;
      if (event.affectsConfiguration("completer.pythonPath")) return restartClient(context);
      if (client?.state !== State.Running) return;
      await client.sendNotification(DidChangeConfigurationNotification.type,
        { settings: serverSettings((key) => config().get(key)) });
      // engine settings make the server reload its engine, a moment later: watch for it
      pollUntil = Date.now() + 30_000;
      await refreshStats();
    }),
  );
  await startClient(context);
}

export async function deactivate(): Promise<void> {
  if (poll) clearInterval(poll);
  await client?.stop();
}

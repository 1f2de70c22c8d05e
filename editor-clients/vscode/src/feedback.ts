// Pure: what completer/accepted and completer/dismissed carry, from the command the server puts on
// each inline completion item (no `vscode` import).

/**
 * The command the server puts on each item, `arguments: [{id, uri}]`, and that VS Code runs after
 * inserting it. The server has no executeCommandProvider: the extension registers the command.
 */
export const ACCEPTED_COMMAND = "completer.accepted";

export interface CommandLike {
  title: string;
  command: string;
  arguments?: unknown[];
}

/** A suggestion as shown: the server's id (vLLM's request id, "cmpl-…"), its document, its text. */
export interface Suggestion {
  id?: string; // absent from a server that sends none
  uri: string;
  text: string;
}

export interface AcceptedParams {
  id?: string;
  uri: string;
  text?: string;
  partial: boolean;
}

export interface DismissedParams {
  id?: string;
  uri: string;
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined;
}

/** The server's id of a suggestion, from the command on its item; undefined when it sent none. */
export function suggestionId(command: CommandLike | undefined): string | undefined {
  const id = command?.command === ACCEPTED_COMMAND ? asRecord(command.arguments?.[0])?.id : undefined;
  return typeof id === "string" ? id : undefined;
}

/** The item's command: the server's, with the text shown added, so the notification can carry it. */
export function acceptedCommand(suggestion: Suggestion): CommandLike {
  const arg: Suggestion = { uri: suggestion.uri, text: suggestion.text };
  if (suggestion.id !== undefined) arg.id = suggestion.id;
  return { title: "completer: accepted", command: ACCEPTED_COMMAND, arguments: [arg] };
}

/**
 * `completer/accepted`'s params from the command's argument (as acceptedCommand wrote it, or as
 * the server sent it: no text); undefined for anything without a document uri. VS Code runs the
 * command on whole accepts only.
 */
export function acceptedParams(arg: unknown): AcceptedParams | undefined {
  const fields = asRecord(arg);
  if (typeof fields?.uri !== "string") return undefined;
  const params: AcceptedParams = { uri: fields.uri, partial: false };
  if (typeof fields.id === "string") params.id = fields.id;
  if (typeof fields.text === "string") params.text = fields.text;
  return params;
}

/** `completer/dismissed`'s params for the suggestion on screen. */
export function dismissedParams(suggestion: Suggestion): DismissedParams {
  return suggestion.id === undefined ? { uri: suggestion.uri } : { id: suggestion.id, uri: suggestion.uri };
}

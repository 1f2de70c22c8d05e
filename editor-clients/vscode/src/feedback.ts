// Pure: what completer/accepted and completer/dismissed carry, from the command the server puts on
// each inline completion item, and which of our suggestions is still on screen when Escape is
// pressed (no `vscode` import).

/**
 * The command the server puts on each item, `arguments: [{id, uri}]`. The server also offers it
 * as a workspace command (for clients that run an item's command on the server), so the language
 * client registers it; the items VS Code gets carry EDITOR_ACCEPTED_COMMAND instead.
 */
export const ACCEPTED_COMMAND = "completer.accepted";

/**
 * The extension's own command on each item, `arguments: [{id, uri, text}]`, that VS Code runs
 * after inserting it: it sends completer/accepted with the text shown.
 */
export const EDITOR_ACCEPTED_COMMAND = "completer.editorAccepted";

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

/** The item's command: the extension's, with the server's id and the text shown, for the notification. */
export function acceptedCommand(suggestion: Suggestion): CommandLike {
  const arg: Suggestion = { uri: suggestion.uri, text: suggestion.text };
  if (suggestion.id !== undefined) arg.id = suggestion.id;
  return { title: "completer: accepted", command: EDITOR_ACCEPTED_COMMAND, arguments: [arg] };
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

/** A place in a document as VS Code counts it: zero-based line and UTF-16 character. */
export interface Place {
  line: number;
  character: number;
}

/** One edit of a document change, as VS Code's TextDocumentContentChangeEvent gives it. */
export interface ContentChange {
  range: { start: Place; end: Place };
  text: string;
}

/** One selection of an editor, as VS Code's Selection gives it. */
export interface SelectionLike {
  anchor: Place;
  active: Place;
}

function samePlace(a: Place, b: Place): boolean {
  return a.line === b.line && a.character === b.character;
}

/** The place after `text` inserted at `place` (text with line breaks moves to a later line). */
export function placeAfter(place: Place, text: string): Place {
  const lines = text.split("\n");
  const last = lines[lines.length - 1];
  return lines.length === 1
    ? { line: place.line, character: place.character + last.length }
    : { line: place.line + lines.length - 1, character: last.length };
}

/** The cursor of an editor with one empty selection; undefined for a range or several cursors. */
export function cursorOf(selections: readonly SelectionLike[]): Place | undefined {
  if (selections.length !== 1 || !samePlace(selections[0].anchor, selections[0].active)) return undefined;
  return selections[0].active;
}

/** Our suggestion on screen in one document: where (version, cursor) and what of it is still ahead. */
interface OnScreen {
  suggestion: Suggestion;
  version: number;
  cursor: Place;
  ahead: string; // the text not typed yet; the ghost text VS Code shows
}

/**
 * The suggestion of ours on screen, per document uri, so that Escape reports only that one: an
 * entry lives while its document stays at the version and cursor it was shown at, or moves on by
 * the user typing what it says (VS Code keeps showing the rest); any other edit, a cursor or
 * selection elsewhere, another active editor, an accept or a dismiss forgets it.
 */
export class ShownSuggestions {
  private readonly byUri = new Map<string, OnScreen>();

  /** Our answer for `uri` at `version` and `cursor`: its first suggestion, or none (forgets). */
  show(uri: string, version: number, cursor: Place, suggestion: Suggestion | undefined): void {
    if (suggestion === undefined || suggestion.text === "") this.byUri.delete(uri);
    else this.byUri.set(uri, { suggestion, version, cursor, ahead: suggestion.text });
  }

  /** The document `uri` is now at `version` after `changes`: typing the text ahead keeps it. */
  changed(uri: string, version: number, changes: readonly ContentChange[]): void {
    const entry = this.byUri.get(uri);
    if (!entry || version === entry.version) return; // no entry, or no edit (a save, a dirty flag)
    const [change] = changes;
    const typedAhead = changes.length === 1 && change.text !== "" && entry.ahead.startsWith(change.text)
      && samePlace(change.range.start, entry.cursor) && samePlace(change.range.end, entry.cursor);
    if (!typedAhead || change.text === entry.ahead) {
      this.byUri.delete(uri); // another edit, or the whole suggestion typed: nothing left on screen
      return;
    }
    entry.version = version;
    entry.cursor = placeAfter(entry.cursor, change.text);
    entry.ahead = entry.ahead.slice(change.text.length);
  }

  /** The selections of the active editor of `uri` changed: only its cursor, unmoved, keeps it. */
  selected(uri: string, selections: readonly SelectionLike[]): void {
    const entry = this.byUri.get(uri);
    const cursor = cursorOf(selections);
    if (entry && !(cursor && samePlace(cursor, entry.cursor))) this.byUri.delete(uri);
  }

  /** Forgets the suggestion of `uri` (accepted, or its document closed). */
  forget(uri: string): void {
    this.byUri.delete(uri);
  }

  /** Forgets every suggestion (the active editor changed). */
  clear(): void {
    this.byUri.clear();
  }

  /**
   * Escape in the editor of `uri`, at `version` with `selections`: the suggestion to report as
   * dismissed, undefined when ours on screen there is unknown or stale. Forgets it either way.
   */
  dismiss(uri: string, version: number, selections: readonly SelectionLike[]): Suggestion | undefined {
    const entry = this.byUri.get(uri);
    this.byUri.delete(uri);
    const cursor = cursorOf(selections);
    if (!entry || version !== entry.version || !cursor || !samePlace(cursor, entry.cursor)) return undefined;
    return entry.suggestion;
  }
}

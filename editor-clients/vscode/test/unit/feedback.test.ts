import { strict as assert } from "node:assert";
import { test } from "node:test";
import {
  ACCEPTED_COMMAND, acceptedCommand, acceptedParams, ContentChange, cursorOf, dismissedParams, EDITOR_ACCEPTED_COMMAND,
  Place, placeAfter, SelectionLike, ShownSuggestions, Suggestion, suggestionId,
} from "../../src/feedback";

const URI = "file:///work/fib.py";
const fromServer = {
  title: "completer: accepted", command: "completer.accepted", arguments: [{ id: "cmpl-3f9c", uri: URI }],
};

test("the id comes from the server's command on the item", () => {
  const cases: [unknown, string | undefined][] = [
    [fromServer, "cmpl-3f9c"],
    [undefined, undefined], // an older server: no command
    [{ ...fromServer, arguments: [] }, undefined],
    [{ ...fromServer, arguments: [{ uri: URI }] }, undefined],
    [{ ...fromServer, arguments: [{ id: 7, uri: URI }] }, undefined],
    [{ ...fromServer, arguments: [null] }, undefined],
    [{ ...fromServer, command: "other.command" }, undefined], // someone else's command
  ];
  for (const [command, id] of cases) {
    assert.equal(suggestionId(command as Parameters<typeof suggestionId>[0]), id, JSON.stringify(command));
  }
});

test("the item's command is the extension's: the server's id and the text shown", () => {
  // the language client registers the server's command (executeCommandProvider): one name, one owner
  assert.notEqual(EDITOR_ACCEPTED_COMMAND, ACCEPTED_COMMAND);
  assert.deepEqual(acceptedCommand({ id: "cmpl-3f9c", uri: URI, text: "return n" }), {
    title: "completer: accepted", command: EDITOR_ACCEPTED_COMMAND,
    arguments: [{ id: "cmpl-3f9c", uri: URI, text: "return n" }],
  });
  assert.deepEqual(acceptedCommand({ id: undefined, uri: URI, text: "x" }).arguments, [{ uri: URI, text: "x" }]);
});

test("completer/accepted's params from the command's argument", () => {
  const cases: [unknown, object | undefined][] = [
    [{ id: "cmpl-1", uri: URI, text: "return n" }, { id: "cmpl-1", uri: URI, text: "return n", partial: false }],
    [{ uri: URI, text: "x" }, { uri: URI, text: "x", partial: false }], // no id from the server
    [{ id: "cmpl-1", uri: URI }, { id: "cmpl-1", uri: URI, partial: false }], // the server's own argument
    [{ id: "cmpl-1" }, undefined], // no document
    [URI, undefined],
    [undefined, undefined],
  ];
  for (const [arg, params] of cases) assert.deepEqual(acceptedParams(arg), params, JSON.stringify(arg));
});

test("a round trip: server command → item command → notification", () => {
  const id = suggestionId(fromServer);
  const command = acceptedCommand({ id, uri: URI, text: "return n" });
  assert.deepEqual(acceptedParams(command.arguments?.[0]), { id: "cmpl-3f9c", uri: URI, text: "return n", partial: false });
});

test("completer/dismissed's params name the suggestion on screen", () => {
  assert.deepEqual(dismissedParams({ id: "cmpl-2", uri: URI, text: "x" }), { id: "cmpl-2", uri: URI });
  assert.deepEqual(dismissedParams({ uri: URI, text: "x" }), { uri: URI });
});

test("the place after inserted text", () => {
  const cases: [Place, string, Place][] = [
    [{ line: 3, character: 4 }, "", { line: 3, character: 4 }],
    [{ line: 3, character: 4 }, "ret", { line: 3, character: 7 }],
    [{ line: 3, character: 4 }, "\n", { line: 4, character: 0 }],
    [{ line: 3, character: 4 }, "x\n    ", { line: 4, character: 4 }],
    [{ line: 3, character: 4 }, "a\nb\ncd", { line: 5, character: 2 }],
    [{ line: 0, character: 0 }, "é😀", { line: 0, character: 3 }], // UTF-16 code units, as VS Code counts
  ];
  for (const [place, text, after] of cases) assert.deepEqual(placeAfter(place, text), after, JSON.stringify(text));
});

const at = (line: number, character: number): Place => ({ line, character });
const cursor = (line: number, character: number): SelectionLike[] => [{ anchor: at(line, character), active: at(line, character) }];
const insert = (place: Place, text: string): ContentChange => ({ range: { start: place, end: place }, text });

test("the cursor of one empty selection only", () => {
  const cases: [SelectionLike[], Place | undefined][] = [
    [cursor(2, 5), at(2, 5)],
    [[], undefined],
    [[{ anchor: at(2, 1), active: at(2, 5) }], undefined], // a range selected
    [[...cursor(2, 5), ...cursor(3, 5)], undefined], // several cursors
  ];
  for (const [selections, place] of cases) assert.deepEqual(cursorOf(selections), place, JSON.stringify(selections));
});

const OTHER = "file:///work/other.py";
const SHOWN: Suggestion = { id: "cmpl-7", uri: URI, text: "return n" };

/** A suggestion shown in URI at version 4, cursor 2:8; then `events`; then Escape at `version`, `selections`. */
function dismissedAfter(events: (shown: ShownSuggestions) => void, version = 4, selections = cursor(2, 8)) {
  const shown = new ShownSuggestions();
  shown.show(URI, 4, at(2, 8), SHOWN);
  events(shown);
  return shown.dismiss(URI, version, selections);
}

test("Escape reports our suggestion only while it is on screen where it was shown", () => {
  const cases: [string, (shown: ShownSuggestions) => void, number, SelectionLike[], Suggestion | undefined][] = [
    ["nothing happened", () => {}, 4, cursor(2, 8), SHOWN],
    ["a save: no edit, same version", (s) => s.changed(URI, 4, []), 4, cursor(2, 8), SHOWN],
    ["the cursor re-reported where it is", (s) => s.selected(URI, cursor(2, 8)), 4, cursor(2, 8), SHOWN],
    ["another document edited", (s) => s.changed(OTHER, 9, [insert(at(0, 0), "x")]), 4, cursor(2, 8), SHOWN],
    ["another document's cursor moved", (s) => s.selected(OTHER, cursor(0, 0)), 4, cursor(2, 8), SHOWN],
    ["typed through: 'ret'", (s) => { s.changed(URI, 5, [insert(at(2, 8), "ret")]); s.selected(URI, cursor(2, 11)); },
      5, cursor(2, 11), SHOWN],
    ["typed through in two keystrokes", (s) => {
      s.changed(URI, 5, [insert(at(2, 8), "r")]);
      s.selected(URI, cursor(2, 9));
      s.changed(URI, 6, [insert(at(2, 9), "et")]);
    }, 6, cursor(2, 11), SHOWN],
    // stale: Escape then hides someone else's suggestion, or one VS Code no longer shows
    ["nothing shown there", (s) => s.forget(URI), 4, cursor(2, 8), undefined],
    ["Escape in another version", () => {}, 5, cursor(2, 8), undefined],
    ["Escape at another cursor", () => {}, 4, cursor(2, 9), undefined],
    ["Escape with a range selected", () => {}, 4, [{ anchor: at(2, 1), active: at(2, 8) }], undefined],
    ["typed something else", (s) => s.changed(URI, 5, [insert(at(2, 8), "x")]), 5, cursor(2, 9), undefined],
    ["typed past the suggestion's start", (s) => s.changed(URI, 5, [insert(at(2, 8), "return nx")]), 5, cursor(2, 17),
      undefined],
    ["typed all of it", (s) => s.changed(URI, 5, [insert(at(2, 8), "return n")]), 5, cursor(2, 16), undefined],
    ["typed it elsewhere", (s) => s.changed(URI, 5, [insert(at(1, 0), "r")]), 5, cursor(2, 8), undefined],
    ["a deletion", (s) => s.changed(URI, 5, [{ range: { start: at(2, 7), end: at(2, 8) }, text: "" }]), 5,
      cursor(2, 7), undefined],
    ["a replacement with the text ahead", (s) => s.changed(URI, 5, [{ range: { start: at(2, 7), end: at(2, 8) }, text: "r" }]),
      5, cursor(2, 8), undefined],
    ["typed at two cursors", (s) => s.changed(URI, 5, [insert(at(2, 8), "r"), insert(at(3, 8), "r")]), 5, cursor(2, 9),
      undefined],
    ["the cursor moved and came back", (s) => { s.selected(URI, cursor(2, 7)); s.selected(URI, cursor(2, 8)); },
      4, cursor(2, 8), undefined],
    ["a range selected", (s) => s.selected(URI, [{ anchor: at(2, 0), active: at(2, 8) }]), 4, cursor(2, 8), undefined],
    ["another editor active", (s) => s.clear(), 4, cursor(2, 8), undefined],
    ["an empty answer since", (s) => s.show(URI, 4, at(2, 8), undefined), 4, cursor(2, 8), undefined],
  ];
  for (const [name, events, version, selections, expected] of cases) {
    assert.deepEqual(dismissedAfter(events, version, selections), expected, name);
  }
});

test("a newer answer replaces the one remembered; a dismiss forgets it", () => {
  const shown = new ShownSuggestions();
  const newer: Suggestion = { id: "cmpl-8", uri: URI, text: "urn n" };
  shown.show(URI, 4, at(2, 8), SHOWN);
  shown.show(URI, 5, at(2, 11), newer);
  assert.equal(shown.dismiss(URI, 4, cursor(2, 8)), undefined);
  shown.show(URI, 5, at(2, 11), newer);
  assert.deepEqual(shown.dismiss(URI, 5, cursor(2, 11)), newer);
  assert.equal(shown.dismiss(URI, 5, cursor(2, 11)), undefined); // Escape again: already reported
});

test("each document keeps its own suggestion", () => {
  const shown = new ShownSuggestions();
  const other: Suggestion = { id: "cmpl-9", uri: OTHER, text: "pass" };
  shown.show(URI, 4, at(2, 8), SHOWN);
  shown.show(OTHER, 1, at(0, 4), other);
  shown.changed(OTHER, 2, [insert(at(5, 0), "y")]); // forgets OTHER's only
  assert.equal(shown.dismiss(OTHER, 2, cursor(0, 4)), undefined);
  assert.deepEqual(shown.dismiss(URI, 4, cursor(2, 8)), SHOWN);
});

import { strict as assert } from "node:assert";
import { test } from "node:test";
import { ACCEPTED_COMMAND, acceptedCommand, acceptedParams, dismissedParams, suggestionId } from "../../src/feedback";

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

test("the item's command keeps the server's id and adds the text shown", () => {
  assert.deepEqual(acceptedCommand({ id: "cmpl-3f9c", uri: URI, text: "return n" }), {
    title: "completer: accepted", command: ACCEPTED_COMMAND,
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

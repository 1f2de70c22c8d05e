import { strict as assert } from "node:assert";
import { test } from "node:test";
import { resolvePython } from "../../src/python";

const fsWith = (...files: string[]) => (file: string) => files.includes(file);

test("a configured path wins", () => {
  assert.equal(resolvePython(" /opt/py/bin/python ", ["/repo"], fsWith()), "/opt/py/bin/python");
});

test("the nearest .venv with completer installed, searching upwards", () => {
  const exists = fsWith("/repo/.venv/bin/python", "/repo/.venv/bin/completer");
  assert.equal(resolvePython("", ["/repo/editor-clients/vscode"], exists), "/repo/.venv/bin/python");
  assert.equal(resolvePython(undefined, ["/elsewhere", "/repo"], exists), "/repo/.venv/bin/python");
});

test("a .venv without completer is not taken", () => {
  const exists = fsWith("/proj/.venv/bin/python", "/repo/.venv/bin/python", "/repo/.venv/bin/completer");
  assert.equal(resolvePython("", ["/proj"], exists), "python3");
  assert.equal(resolvePython("", ["/proj", "/repo"], exists), "/repo/.venv/bin/python");
});

test("python3 otherwise", () => {
  assert.equal(resolvePython("", [], fsWith()), "python3");
});

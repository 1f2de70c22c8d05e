"""The failure classes seen on real repositories, through the real server and the real model: one
document per class, and the property the answer must have (the exact text is the model's)."""

from __future__ import annotations

import pytest

from tests.e2e.helpers import inline_params, open_doc
from tests.unit.test_real_code_classes import GRADE

pytestmark = pytest.mark.engine

CASES = {
    # class: (language id, document with ‸ at the cursor)
    "col0": ("python", '''class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
‸

    def pop(self):
        return self.items.pop()

    def peek(self):
        return self.items[-1]
'''),
    "col0_go": ("go", "package stack\n\ntype Stack struct {\n\titems []int\n}\n\nfunc (s *Stack) Push(v int) {\n‸\n}\n\n"
                      "func (s *Stack) Len() int {\n\treturn len(s.items)\n}\n"),
    "long_body": ("go", "package stats\n\n// Sum returns the sum of xs and how many of them were negative.\n"
                        "func Sum(xs []int) (int, int) {\n\t‸\n}\n"),
    "jsdoc": ("typescript", '''/**
 * Creates a client.
 *
 * @example
 * ```ts
 * const client = createClient({ baseUrl: "https://api.example.com" });
 * ‸
 * ```
 */
export function createClient(options: { baseUrl: string }) {
  return { get: (path: string) => fetch(options.baseUrl + path) };
}
'''),
    "raw_string": ("go", "package page\n\nconst listTemplate = `\n<ul>\n{{range .Items}}\n  ‸\n{{end}}\n</ul>\n`\n"),
    "tab_block": ("go", "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tnames := []string{\"a\", \"b\", \"c\"}\n"
                        "\tfor i, name := range names {\n\t\t‸\n\t}\n}\n"),
    "elif": ("python", GRADE),
    "tab_python": ("python", "def area(w, h):\n\tif w < 0 or h < 0:\n\t\traise ValueError(\"negative\")\n\t‸\n"),
}


async def answer(client, name: str) -> str:
    language, document = CASES[name]
    before, _, _ = document.partition("‸")
    uri = f"file:///workspace/real/{name}.{ {'python': 'py', 'go': 'go', 'typescript': 'ts'}[language] }"
    open_doc(client, uri, document.replace("‸", ""), language)
    line = before.count("\n")
    character = len(before.rpartition("\n")[2])  # all ASCII: UTF-16 units are characters
    result = await client.text_document_inline_completion_async(inline_params(uri, line, character))
    items = getattr(result, "items", result) or []
    return items[0].insert_text if items else ""


async def test_at_column_0_of_a_body_the_answer_stays_in_the_function_and_brings_its_indentation(client):
    text = await answer(client, "col0")
    lines = [line for line in text.split("\n") if line.strip()]
    assert lines, "no answer"
    assert all(line.startswith(" " * 8) for line in lines), text  # push's body, never the next method
    text = await answer(client, "col0_go")
    assert text.startswith("\t") and not text.startswith("\t\t"), repr(text)
    assert "func " not in text and "\n}" not in text, repr(text)


async def test_a_body_that_continues_gets_more_than_one_line(client):
    text = await answer(client, "long_body")
    assert len([line for line in text.split("\n") if line.strip()]) >= 3, repr(text)


@pytest.mark.parametrize("name", ["jsdoc", "raw_string"])
async def test_doc_comments_and_templates_get_an_answer(client, name):
    assert (await answer(client, name)).strip()


async def test_a_block_on_an_indented_empty_line_starts_with_code_in_the_files_tabs(client):
    text = await answer(client, "tab_block")
    assert text.strip() and not text.startswith(("\n", "\t", " ")), repr(text)  # the cursor has the tabs already
    assert all(not line.startswith(" ") for line in text.split("\n")[1:]), repr(text)


async def test_the_next_existing_branch_is_not_written_again(client):
    text = await answer(client, "elif")
    assert text.strip() and "score >= 70" not in text and "else:" not in text, repr(text)


async def test_a_trailing_tab_is_not_written_twice(client):
    text = await answer(client, "tab_python")
    assert text.strip() and not text.startswith("\t"), repr(text)

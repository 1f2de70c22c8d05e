"""`completer bench typing`: replayed typing sessions through the real LSP server.

session: what is typed and where the typist stops; client: pygls' language client over a
`completer serve` process; replay: the typist; report: figures, table and plot; runner: the
modes compared, a whole run and the rescoring of a recorded one.
"""

from completer.bench.typing_bench.report import markdown
from completer.bench.typing_bench.runner import rescore, run

__all__ = ["markdown", "rescore", "run"]

"""The open documents: one store of text and syntax tree per document, and LSP positions."""

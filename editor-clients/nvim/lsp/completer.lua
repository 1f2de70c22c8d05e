-- Neovim 0.11+ config for the completer language server: `vim.lsp.enable('completer')`.
-- Override any field with `vim.lsp.config('completer', { ... })`, e.g. the command when
-- `completer` is not on $PATH: `cmd = { '/path/to/.venv/bin/completer', 'serve' }`.

---@type vim.lsp.Config
return {
  cmd = { 'completer', 'serve' },
  filetypes = {
    'python',
    'javascript',
    'javascriptreact',
    'typescript',
    'typescriptreact',
    'go',
    'rust',
    'java',
    'c',
    'cpp',
    'lua', -- no grammar on the server side: completed as plain text
  },
  root_markers = { '.git', 'pyproject.toml', 'package.json', 'go.mod', 'Cargo.toml', 'pom.xml', 'Makefile' },
  -- The `completer.accepted` command the server puts on its items is run here, on the client: it
  -- sends `completer/accepted` with the item's id (a config of your own needs this line too).
  commands = require('completer.lsp').commands,
  -- The server reads its settings from initializationOptions (names as in vLLM; see the README's
  -- table). Settings that size the engine (model, speculative_config, dtype, ...) reload it.
  init_options = {
    speculative_config = { num_speculative_tokens = 5 },
    max_tokens = 128,
    max_tokens_single_line = 48,
  },
}

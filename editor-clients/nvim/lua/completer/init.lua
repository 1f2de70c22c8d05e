-- Inline suggestions from the completer language server.
--
--   vim.lsp.enable('completer')       -- starts the server (lsp/completer.lua)
--   require('completer').setup({})   -- ghost text, mappings, :CompleterStats
--
-- Neovim 0.12+ shows suggestions with vim.lsp.inline_completion; on 0.11 this plugin asks for
-- `textDocument/inlineCompletion` itself and draws the ghost text (completer.ghost).

local api = vim.api
local lsp_util = require('completer.lsp')

local M = {}

---@class completer.Opts
M.defaults = {
  -- Insert-mode keys; false leaves a key unmapped (call require('completer').accept() etc.).
  -- A key with no suggestion shown does what it does without the plugin.
  keys = {
    accept = '<Tab>',
    accept_line = '<M-l>',
    dismiss = '<C-]>',
  },
  -- 'auto': vim.lsp.inline_completion where Neovim has it (0.12+), else the plugin's ghost text.
  -- 'ghost': always the plugin's ghost text.
  backend = 'auto',
  debounce_ms = 150, -- quiet time before asking (ghost backend)
  hl_group = 'CompleterGhost', -- linked to Comment unless the colorscheme defines it
  client_name = 'completer', -- the name the server was enabled under
}

local backend ---@type table

--- Run a backend action now (native) or right after the mapping returns (ghost: buffer edits are
--- not allowed while an <expr> mapping is evaluated). Returns whether a suggestion was there.
local function run(action, partial)
  local bufnr = api.nvim_get_current_buf()
  if backend.visible then
    if not backend.visible(bufnr) then
      return false
    end
    vim.schedule(function()
      backend[action](bufnr, partial)
    end)
    return true
  end
  return backend[action](bufnr, partial)
end

--- Accept the whole suggestion. Returns false when none is shown.
function M.accept()
  return run('accept', false)
end

--- Accept the suggestion up to the end of its current line.
function M.accept_line()
  return run('accept', true)
end

--- Hide the suggestion (the server is told it was dismissed).
function M.dismiss()
  return run('dismiss')
end

local function map(lhs, fn, desc)
  if not lhs then
    return
  end
  vim.keymap.set('i', lhs, function()
    if fn() then
      return ''
    end
    return lhs -- nothing to act on: the key keeps its usual meaning
  end, { expr = true, replace_keycodes = true, desc = desc })
end

local function one_line(value)
  return vim.inspect(value, { newline = ' ', indent = '' })
end

--- `key: value` lines; a table's fields as `key.field: value`, one line each; a list of records
--- (the recent requests) only counted, to be read with require('completer').stats().
local function format_stats(stats)
  local lines = {}
  local keys = vim.tbl_keys(stats)
  table.sort(keys)
  for _, key in ipairs(keys) do
    local value = stats[key]
    if type(value) == 'table' and #value > 0 and type(value[1]) == 'table' then
      lines[#lines + 1] = ('%s: %d entries'):format(key, #value)
    elseif type(value) == 'table' then
      local sub = vim.tbl_keys(value)
      table.sort(sub)
      for _, k in ipairs(sub) do
        lines[#lines + 1] = ('%s.%s: %s'):format(key, k, one_line(value[k]))
      end
    elseif value ~= vim.NIL then
      lines[#lines + 1] = ('%s: %s'):format(key, type(value) == 'string' and value or vim.inspect(value))
    end
  end
  return lines
end

--- `completer/stats` as a table (engine state, request counts, acceptance, last completion).
function M.stats(timeout_ms)
  return lsp_util.stats(api.nvim_get_current_buf(), timeout_ms)
end

---@param opts? completer.Opts
function M.setup(opts)
  opts = vim.tbl_deep_extend('force', M.defaults, opts or {})
  lsp_util.name = opts.client_name
  api.nvim_set_hl(0, 'CompleterGhost', { link = 'Comment', default = true })

  local native = require('completer.native')
  if opts.backend == 'auto' and native.available() then
    backend = native
    native.setup()
  else
    backend = require('completer.ghost')
    backend.setup({ debounce_ms = opts.debounce_ms, hl_group = opts.hl_group })
  end

  map(opts.keys.accept, M.accept, 'completer: accept the suggestion')
  map(opts.keys.accept_line, M.accept_line, 'completer: accept the suggestion up to the end of the line')
  map(opts.keys.dismiss, M.dismiss, 'completer: dismiss the suggestion')

  api.nvim_create_user_command('CompleterStats', function()
    local stats, err = M.stats()
    if not stats then
      api.nvim_echo({ { 'completer: ' .. err, 'ErrorMsg' } }, true, {})
      return
    end
    api.nvim_echo({ { table.concat(format_stats(stats), '\n') } }, true, {})
  end, { desc = 'Show the completer server state and counters' })
end

return M

-- Neovim 0.12+: suggestions come from vim.lsp.inline_completion (its own requests, debounce
-- and ghost text); this module only enables it for the completer client and reports what the
-- user did with a suggestion. Its accept and dismiss go through get()'s on_accept, which replaces
-- the default accept, so the item's `completer.accepted` command does not run as well: the
-- notification sent here carries the id and what was taken (whole or first line).

local api = vim.api
local lsp_util = require('completer.lsp')
local text_util = require('completer.text')

local M = {}

function M.available()
  local ic = vim.lsp.inline_completion
  return ic ~= nil and ic.enable ~= nil and ic.get ~= nil
end

local function item_text(item)
  local text = item.insert_text
  return type(text) == 'table' and text.value or text
end

--- Apply (part of) an accepted item the way Neovim's default handler does, then report it.
local function apply(bufnr, item, partial)
  local text = text_util.normalize_newlines(item_text(item)) -- a CRLF file's suggestion: no ^M
  local take = partial and text_util.first_line(text) or text
  local lines = text_util.lines(take)
  local row, col, end_row, end_col
  if item.range then
    row, col = item.range.start.row, item.range.start.col
    end_row, end_col = item.range.end_.row, item.range.end_.col
  else
    local cursor = api.nvim_win_get_cursor(0)
    row, col = cursor[1] - 1, cursor[2]
    end_row, end_col = row, col
  end
  if partial and take ~= text then
    end_row, end_col = row, col -- keep what the full item would have replaced
  end
  api.nvim_buf_set_text(bufnr, row, col, end_row, end_col, lines)
  api.nvim_win_set_cursor(0, { row + #lines, (#lines == 1 and col or 0) + #lines[#lines] })
  lsp_util.notify_accepted(bufnr, item.client_id, lsp_util.suggestion_id(item), take, take ~= text)
end

--- Accept the shown item (or its first line). Returns false when none is shown.
function M.accept(bufnr, partial)
  bufnr = bufnr or api.nvim_get_current_buf()
  return vim.lsp.inline_completion.get({
    bufnr = bufnr,
    on_accept = function(item)
      apply(bufnr, item, partial)
    end,
  })
end

--- get() with an on_accept that inserts nothing is the public way to drop the shown item.
function M.dismiss(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  return vim.lsp.inline_completion.get({
    bufnr = bufnr,
    on_accept = function(item)
      lsp_util.notify_dismissed(bufnr, item.client_id, lsp_util.suggestion_id(item))
    end,
  })
end

function M.setup()
  local group = api.nvim_create_augroup('completer.native', { clear = true })
  api.nvim_create_autocmd('LspAttach', {
    group = group,
    callback = function(ev)
      local client = vim.lsp.get_client_by_id(ev.data.client_id)
      if client and client.name == lsp_util.name then
        vim.lsp.inline_completion.enable(true, { client_id = client.id })
      end
    end,
  })
  for _, client in ipairs(vim.lsp.get_clients({ name = lsp_util.name })) do
    vim.lsp.inline_completion.enable(true, { client_id = client.id })
  end
end

return M

-- Ghost text for Neovim 0.11 (which has no vim.lsp.inline_completion): asks the server for
-- `textDocument/inlineCompletion` while typing and shows the answer as extmarks, the first
-- line as inline virt_text at the cursor and the rest as virt_lines below it.

local api = vim.api
local lsp_util = require('completer.lsp')
local text_util = require('completer.text')

local M = {}

local ns = api.nvim_create_namespace('completer')
local TRIGGER_AUTOMATIC = 2 -- lsp.InlineCompletionTriggerKind.Automatic

---@class completer.Ghost
---@field row integer 0-based row where `text` would be inserted
---@field col integer byte column
---@field text string what is still to be inserted
---@field tick integer b:changedtick when it was last placed
---@field client_id integer
---@field id? string the server's id of the suggestion (completer/accepted and /dismissed carry it)

---@class completer.BufState
---@field ghost? completer.Ghost
---@field inflight? { client_id: integer, id: integer }
---@field timer? uv.uv_timer_t
---@field own_tick? integer changedtick after our own edit: not a reason to ask again

---@type table<integer, completer.BufState>
local bufs = {}
local config = { debounce_ms = 150, hl_group = 'CompleterGhost' }

local function state(bufnr)
  bufs[bufnr] = bufs[bufnr] or {}
  return bufs[bufnr]
end

local function tick(bufnr)
  return api.nvim_buf_get_changedtick(bufnr)
end

-- Virtual text shows a tab as one cell; expand it so that the ghost lines up with real code.
local function expand_tabs(bufnr, s)
  return (s:gsub('\t', string.rep(' ', vim.bo[bufnr].tabstop)))
end

local function render(bufnr)
  api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  local g = state(bufnr).ghost
  if not g then
    return
  end
  local lines = text_util.lines(g.text)
  local virt_lines = {}
  for i = 2, #lines do
    virt_lines[#virt_lines + 1] = { { expand_tabs(bufnr, lines[i]), config.hl_group } }
  end
  api.nvim_buf_set_extmark(bufnr, ns, g.row, g.col, {
    virt_text = { { expand_tabs(bufnr, lines[1]), config.hl_group } },
    virt_text_pos = 'inline', -- pushes the rest of the line right instead of covering it
    virt_lines = #virt_lines > 0 and virt_lines or nil,
    hl_mode = 'combine',
  })
end

local function cancel_inflight(bufnr)
  local s = state(bufnr)
  local inflight = s.inflight
  s.inflight = nil
  if inflight then
    local client = vim.lsp.get_client_by_id(inflight.client_id)
    if client then
      client:cancel_request(inflight.id) -- the server aborts the generation inside vLLM
    end
  end
end

local function stop_timer(bufnr)
  local s = state(bufnr)
  if s.timer then
    s.timer:stop()
    s.timer:close()
    s.timer = nil
  end
end

--- Hide the suggestion and forget about any request for this buffer.
function M.clear(bufnr)
  stop_timer(bufnr)
  cancel_inflight(bufnr)
  state(bufnr).ghost = nil
  if api.nvim_buf_is_valid(bufnr) then
    api.nvim_buf_clear_namespace(bufnr, ns, 0, -1)
  end
end

local function in_insert_mode()
  return api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

--- The first usable item of an answer: the text to insert at the cursor and the item, or nil.
local function suggestion_at_cursor(bufnr, client, result, row, col)
  local items = result and (result.items or result) or {}
  for _, item in ipairs(items) do
    local text = item.insertText
    if type(text) == 'table' then
      text = text.value -- a snippet string: shown and inserted as plain text
    end
    if type(text) == 'string' and text ~= '' then
      text = text_util.normalize_newlines(text) -- a CRLF file's suggestion: lines without ^M
      if not item.range then
        return text, item
      end
      -- The item replaces its range. Only ranges that end at the cursor can be shown as
      -- ghost text; the part already typed (range start .. cursor) is skipped.
      local line = api.nvim_buf_get_lines(bufnr, row, row + 1, true)[1]
      local s, e = item.range.start, item.range['end']
      if s.line == row and e.line == row then
        local start_col = vim.str_byteindex(line, client.offset_encoding, s.character, false)
        local end_col = vim.str_byteindex(line, client.offset_encoding, e.character, false)
        local typed = line:sub(start_col + 1, col)
        if end_col == col and start_col <= col and text:sub(1, #typed) == typed then
          text = text:sub(#typed + 1)
          if text ~= '' then
            return text, item
          end
        end
      end
    end
  end
end

--- Ask the server for a suggestion at the cursor, replacing any older request.
function M.request(bufnr)
  stop_timer(bufnr)
  cancel_inflight(bufnr)
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_buf(win) ~= bufnr or not in_insert_mode() then
    return
  end
  local client = lsp_util.client(bufnr)
  if not client then
    return
  end
  local params = vim.lsp.util.make_position_params(win, client.offset_encoding)
  params.context = { triggerKind = TRIGGER_AUTOMATIC }
  local asked_tick = tick(bufnr)
  local cursor = api.nvim_win_get_cursor(win)
  local id -- declared first: the handler below compares against it
  local ok
  ok, id = client:request('textDocument/inlineCompletion', params, function(err, result)
    local s = state(bufnr)
    if s.inflight and s.inflight.id == id then
      s.inflight = nil
    end
    -- A late answer for text or a cursor that has moved on is of no use.
    if err or not api.nvim_buf_is_valid(bufnr) or tick(bufnr) ~= asked_tick or not in_insert_mode() then
      return
    end
    local now = api.nvim_win_get_cursor(0)
    if api.nvim_get_current_buf() ~= bufnr or now[1] ~= cursor[1] or now[2] ~= cursor[2] then
      return
    end
    local text, item = suggestion_at_cursor(bufnr, client, result, cursor[1] - 1, cursor[2])
    if text then
      s.ghost = {
        row = cursor[1] - 1,
        col = cursor[2],
        text = text,
        tick = asked_tick,
        client_id = client.id,
        id = lsp_util.suggestion_id(item),
      }
      render(bufnr)
    end
  end, bufnr)
  if ok and id then
    state(bufnr).inflight = { client_id = client.id, id = id }
  end
end

--- Ask again after `debounce_ms` of quiet.
local function schedule_request(bufnr)
  stop_timer(bufnr)
  local timer = assert(vim.uv.new_timer())
  state(bufnr).timer = timer
  timer:start(config.debounce_ms, 0, vim.schedule_wrap(function()
    if state(bufnr).timer == timer then
      M.request(bufnr)
    end
  end))
end

--- Typing the suggestion's own next characters keeps the rest of it; anything else asks again.
local function on_text_changed(bufnr)
  local s = state(bufnr)
  local now = tick(bufnr)
  if s.own_tick == now then
    return -- our own accept: the remainder (if any) is already shown
  end
  local g = s.ghost
  if g then
    local row, col = unpack(api.nvim_win_get_cursor(0))
    if row - 1 == g.row and col > g.col then
      local typed = api.nvim_buf_get_lines(bufnr, g.row, g.row + 1, true)[1]:sub(g.col + 1, col)
      if g.text:sub(1, #typed) == typed and #typed < #g.text then
        g.text, g.col, g.tick = g.text:sub(#typed + 1), col, now
        render(bufnr)
        return
      end
    end
  end
  M.clear(bufnr)
  schedule_request(bufnr)
end

-- The cursor moved without an edit (arrows, mouse): the suggestion no longer applies there.
local function on_cursor_moved(bufnr)
  local g = state(bufnr).ghost
  if not g or tick(bufnr) ~= g.tick then
    return -- edits are handled by TextChangedI
  end
  local row, col = unpack(api.nvim_win_get_cursor(0))
  if row - 1 ~= g.row or col ~= g.col then
    M.clear(bufnr)
  end
end

function M.visible(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  return bufs[bufnr] ~= nil and bufs[bufnr].ghost ~= nil
end

--- Insert the suggestion (or its first line) at its anchor. Returns false when none is shown.
---@param partial boolean accept only up to the end of the current line
function M.accept(bufnr, partial)
  bufnr = bufnr or api.nvim_get_current_buf()
  local s = state(bufnr)
  local g = s.ghost
  if not g then
    return false
  end
  local take = partial and text_util.first_line(g.text) or g.text
  local rest = g.text:sub(#take + 1)
  local lines = text_util.lines(take)
  api.nvim_buf_set_text(bufnr, g.row, g.col, g.row, g.col, lines)
  local row = g.row + #lines - 1
  local col = (#lines == 1 and g.col or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { row + 1, col })
  s.own_tick = tick(bufnr)
  lsp_util.notify_accepted(bufnr, g.client_id, g.id, take, rest ~= '')
  if rest ~= '' then -- the rest of the same suggestion: same id
    s.ghost = { row = row, col = col, text = rest, tick = s.own_tick, client_id = g.client_id, id = g.id }
    render(bufnr)
  else
    M.clear(bufnr)
  end
  return true
end

--- Hide the suggestion and tell the server. Returns false when none is shown.
function M.dismiss(bufnr)
  bufnr = bufnr or api.nvim_get_current_buf()
  local g = state(bufnr).ghost
  if not g then
    return false
  end
  M.clear(bufnr)
  lsp_util.notify_dismissed(bufnr, g.client_id, g.id)
  return true
end

function M.setup(opts)
  config = vim.tbl_extend('force', config, opts or {})
  local group = api.nvim_create_augroup('completer.ghost', { clear = true })
  api.nvim_create_autocmd('InsertEnter', {
    group = group,
    callback = function(ev)
      if lsp_util.client(ev.buf) then
        schedule_request(ev.buf)
      end
    end,
  })
  api.nvim_create_autocmd('TextChangedI', {
    group = group,
    callback = function(ev)
      if lsp_util.client(ev.buf) then
        on_text_changed(ev.buf)
      end
    end,
  })
  api.nvim_create_autocmd('CursorMovedI', {
    group = group,
    callback = function(ev)
      on_cursor_moved(ev.buf)
    end,
  })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = group,
    callback = function(ev)
      M.clear(ev.buf)
    end,
  })
  api.nvim_create_autocmd('BufWipeout', {
    group = group,
    callback = function(ev)
      M.clear(ev.buf)
      bufs[ev.buf] = nil
    end,
  })
end

M.namespace = ns
return M

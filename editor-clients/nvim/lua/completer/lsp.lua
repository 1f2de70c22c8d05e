-- The completer client of a buffer, and the server's custom methods.

local M = {}

M.name = 'completer' -- the name given to vim.lsp.config / vim.lsp.enable

-- The command the server puts on each item, `arguments = { { id = <id>, uri = <uri> } }`; LSP
-- runs it after inserting the item. It is the client's own (the server has no
-- executeCommandProvider): see M.commands.
M.ACCEPTED_COMMAND = 'completer.accepted'

---@return vim.lsp.Client?
function M.client(bufnr)
  return vim.lsp.get_clients({ bufnr = bufnr, name = M.name })[1]
end

local function client_for(bufnr, client_id)
  return (client_id and vim.lsp.get_client_by_id(client_id)) or M.client(bufnr)
end

--- The server's id of a suggestion (vLLM's request id, e.g. "cmpl-3f9c…"), read from an item as
--- the server sends it: `command.arguments[1].id` (inline and completion items), else `data.id`
--- (completion items). Works on raw LSP items and on vim.lsp.inline_completion.Item alike.
---@param item? table
---@return string? id nil from a server that sends none
function M.suggestion_id(item)
  if type(item) ~= 'table' then
    return nil
  end
  local command = item.command
  local arg = type(command) == 'table' and type(command.arguments) == 'table' and command.arguments[1]
  if type(arg) == 'table' and type(arg.id) == 'string' then
    return arg.id
  end
  local data = item.data
  if type(data) == 'table' and type(data.id) == 'string' then
    return data.id
  end
  return nil
end

--- `completer/accepted`: the server marks the suggestion `id` accepted in its per-request record
--- and counts it for `completer/stats`.
---@param id? string the suggestion's id (M.suggestion_id); left out when the server sent none
---@param text string what was inserted
---@param partial boolean only its first line was taken
function M.notify_accepted(bufnr, client_id, id, text, partial)
  local client = client_for(bufnr, client_id)
  if client then
    client:notify('completer/accepted', { id = id, uri = vim.uri_from_bufnr(bufnr), text = text, partial = partial })
  end
end

---@param id? string the suggestion's id (M.suggestion_id)
function M.notify_dismissed(bufnr, client_id, id)
  local client = client_for(bufnr, client_id)
  if client then
    client:notify('completer/dismissed', { id = id, uri = vim.uri_from_bufnr(bufnr) })
  end
end

--- Client-side commands of the completer client (`vim.lsp.Config.commands`). Whatever inserts an
--- item and then runs its command (vim.lsp.inline_completion.get() without on_accept,
--- vim.lsp.completion, completion plugins) reports the acceptance through this, instead of asking
--- the server to execute a command it does not have. The inserted text is not in the command:
--- the server has it under the id.
M.commands = {
  [M.ACCEPTED_COMMAND] = function(command, ctx)
    local arg = type(command.arguments) == 'table' and command.arguments[1] or {}
    local client = vim.lsp.get_client_by_id(ctx.client_id)
    if client and type(arg) == 'table' then
      client:notify('completer/accepted', {
        id = type(arg.id) == 'string' and arg.id or nil,
        uri = type(arg.uri) == 'string' and arg.uri or vim.uri_from_bufnr(ctx.bufnr),
        partial = false,
      })
    end
  end,
}

--- `completer/stats` from the buffer's client (else any running one), waiting up to timeout_ms.
---@return table? stats, string? err
function M.stats(bufnr, timeout_ms)
  local client = M.client(bufnr) or vim.lsp.get_clients({ name = M.name })[1]
  if not client then
    return nil, 'no completer client is running'
  end
  local response, err = client:request_sync('completer/stats', {}, timeout_ms or 5000, bufnr)
  if not response then
    return nil, tostring(err)
  end
  if response.err then
    return nil, response.err.message
  end
  return response.result
end

return M

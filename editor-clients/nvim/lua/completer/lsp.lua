-- The completer client of a buffer, and the server's custom methods.

local M = {}

M.name = 'completer' -- the name given to vim.lsp.config / vim.lsp.enable

---@return vim.lsp.Client?
function M.client(bufnr)
  return vim.lsp.get_clients({ bufnr = bufnr, name = M.name })[1]
end

local function client_for(bufnr, client_id)
  return (client_id and vim.lsp.get_client_by_id(client_id)) or M.client(bufnr)
end

--- `completer/accepted`: the server counts it for `completer/stats`.
function M.notify_accepted(bufnr, client_id, text, partial)
  local client = client_for(bufnr, client_id)
  if client then
    client:notify('completer/accepted', { uri = vim.uri_from_bufnr(bufnr), text = text, partial = partial })
  end
end

function M.notify_dismissed(bufnr, client_id)
  local client = client_for(bufnr, client_id)
  if client then
    client:notify('completer/dismissed', { uri = vim.uri_from_bufnr(bufnr) })
  end
end

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

local M = {}

--- The suggestion with every line break (\r\n or a lone \r) as \n. A buffer's lines never hold
--- their line ending, whatever 'fileformat' is ("dos" writes \r\n on save), so a \r left in a
--- suggestion for a CRLF file would be inserted as a visible ^M.
function M.normalize_newlines(text)
  return (text:gsub('\r\n?', '\n'))
end

--- The buffer lines a suggestion inserts: split at every line break (\r\n, \r or \n).
function M.lines(text)
  return vim.split(M.normalize_newlines(text), '\n', { plain = true })
end

--- The part of a suggestion that accept-line takes: up to the end of its first non-empty
--- line (a suggestion that starts with a line break takes that and the line after it).
--- Expects normalize_newlines' text.
function M.first_line(text)
  local nl = text:find('\n', 1, true)
  if nl == 1 then
    local next_nl = text:find('\n', 2, true)
    return next_nl and text:sub(1, next_nl - 1) or text
  end
  return nl and text:sub(1, nl - 1) or text
end

return M

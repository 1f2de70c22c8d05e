local M = {}

--- The part of a suggestion that accept-line takes: up to the end of its first non-empty
--- line (a suggestion that starts with a line break takes that and the line after it).
function M.first_line(text)
  local nl = text:find('\n', 1, true)
  if nl == 1 then
    local next_nl = text:find('\n', 2, true)
    return next_nl and text:sub(1, next_nl - 1) or text
  end
  return nl and text:sub(1, nl - 1) or text
end

return M

#include "bus/redis_update_log.hpp"

#include <utility>

#include "gatehouse/errc.hpp"
#include "redis/connection.hpp"

namespace gatehouse::detail::redis {
namespace {

// The library. `@SIZE@` and `@TTL_MS@` are replaced by the bus options; every gateway loads it
// at connect with REPLACE, so a Redis restarted empty has it again before the gateway reports
// ready (and the last gateway to connect sets the size and TTL for all).
//
// Why it is written this way:
// - The shape is decided exactly as parse_update() decides it (include/gatehouse/update.hpp),
//   so that what is logged is what the gateway delivers to players; a malformed target is
//   published unlogged and the gateway drops and counts it as before.
// - The message is published as its original text with one key spliced in after the first
//   `{`, never re-encoded: cjson would rewrite numbers (and key order) in payloads.
// - Each XADD's entry id is the update id: `<ms>-<seq>`, strictly increasing per key, never
//   reused by this Redis, and an id from a Redis since restarted empty is simply not found.
// - gatehouse_read answers in one round trip, and `gap` unless the entry the client last saw
//   is still there and younger than the TTL (by Redis's clock): then everything after it is
//   there too (trimming removes the oldest first) and younger still. It reads in pages and
//   stops at the caller's byte budget: a log may hold a million entries of any size.
constexpr std::string_view library_template = R"LUA(#!lua name=gatehouse
-- The gatehouse update log (docs/protocol.md 6.4) and idempotent commands (6.5), loaded by the
-- gateway: do not edit in Redis.
local log_size = '@SIZE@'
local log_ttl_ms = @TTL_MS@

local function present(v) return v ~= nil and v ~= cjson.null end

-- The players a message is logged for, in order, each once; nil for an unlogged shape.
local function logged_players(m)
  if present(m.op) then return nil end
  if m.broadcast == true then return nil end
  if present(m.connection_id) then return nil end
  if present(m.player_ids) then
    local ids = m.player_ids
    if type(ids) ~= 'table' or #ids == 0 then return nil end
    local seen, out = {}, {}
    for i = 1, #ids do
      local p = ids[i]
      if type(p) ~= 'string' or p == '' then return nil end
      if not seen[p] then
        seen[p] = true
        out[#out + 1] = p
      end
    end
    return out
  end
  if type(m.player_id) == 'string' and m.player_id ~= '' then return {m.player_id} end
  return nil
end

-- True when `s` is well-formed UTF-8 of at most `max_chars` characters (no surrogates, no
-- overlong forms), as the client codecs check a correlation_id.
local function utf8_within(s, max_chars)
  local i, n, chars = 1, #s, 0
  while i <= n do
    local c = string.byte(s, i)
    local len, lo, hi = 1, 0x80, 0xBF
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c == 0xE0 then len, lo = 3, 0xA0
    elseif c == 0xED then len, hi = 3, 0x9F
    elseif c >= 0xE1 and c <= 0xEF then len = 3
    elseif c == 0xF0 then len, lo = 4, 0x90
    elseif c == 0xF4 then len, hi = 4, 0x8F
    elseif c >= 0xF1 and c <= 0xF3 then len = 4
    else return false end
    if len > 1 then
      if i + len - 1 > n then return false end
      local b = string.byte(s, i + 1)
      if b < lo or b > hi then return false end
      for j = i + 2, i + len - 1 do
        b = string.byte(s, j)
        if b < 0x80 or b > 0xBF then return false end
      end
    end
    i = i + len
    chars = chars + 1
    if chars > max_chars then return false end
  end
  return true
end

-- The keys parse_update() reads, quoted as they are searched for (no concatenation per call).
local quoted_keys = {player_id = '"player_id"', player_ids = '"player_ids"',
  connection_id = '"connection_id"', room = '"room"', broadcast = '"broadcast"', op = '"op"',
  type = '"type"', payload = '"payload"', update_ids = '"update_ids"', delivery = '"delivery"',
  key = '"key"', correlation_id = '"correlation_id"'}

-- True when the object `text` (already decoded by cjson into `m`, so well-formed) names a
-- top-level key twice, as parse_update() refuses (cjson keeps the last). Cheap first: without
-- a backslash every key of `m` is spelled as it is, and a repeated one occurs twice in the
-- text; only then are the members counted. With no backslash every string is `"[^"]*"`, so
-- with the strings taken out nested objects and arrays are balanced brackets, and between the
-- outer braces one comma fewer than members is left; a repeat means more members than `m`
-- has keys. With a backslash (an escaped key may repeat a plain one) the text is walked and
-- its keys decoded.
local function repeats_top_key(m, text)
  if not string.find(text, '\\', 1, true) then
    local again, keys = false, 0
    for k in pairs(m) do
      keys = keys + 1
      local q = quoted_keys[k] or ('"' .. k .. '"')
      local at = string.find(text, q, 1, true)
      if at and string.find(text, q, at + #q, true) then again = true end
    end
    if not again then return false end
    local s = string.gsub(text, '"[^"]*"', '')
    s = string.match(s, '^%s*{(.*)}%s*$')
    s = string.gsub(string.gsub(s, '%b{}', ''), '%b[]', '')
    local _, commas = string.gsub(s, ',', '')
    return commas + 1 > keys
  end
  local seen, depth, pos, want_key = {}, 0, 1, false
  while true do
    local s, _, c = string.find(text, '([{}%[%]",])', pos)
    if s == nil then return false end
    if c == '"' then
      local e, escaped = s + 1, false
      while true do
        local q = string.find(text, '["\\]', e)
        if q == nil then return false end
        if string.byte(text, q) == 92 then
          e, escaped = q + 2, true
        else
          e = q
          break
        end
      end
      if depth == 1 and want_key then
        local k = string.sub(text, s + 1, e - 1)
        if escaped then k = cjson.decode(string.sub(text, s, e)) end
        if seen[k] then return true end
        seen[k] = true
        want_key = false
      end
      pos = e + 1
    else
      if c == '{' or c == '[' then
        depth = depth + 1
        want_key = depth == 1
      elseif c == '}' or c == ']' then
        depth = depth - 1
      else
        want_key = depth == 1
      end
      pos = s + 1
    end
  end
end

-- Why a logged message would be refused by parse_update() (docs/protocol.md 5, 6.6), or nil: a
-- message the gateway drops must not be logged (no one receives it, and it pushes real
-- updates out of the log).
local function refusal(m, text)
  if type(m.type) ~= 'string' or #m.type == 0 or #m.type > 64 or
     string.find(m.type, '[^%w_.:%-]') then
    return 'type must be 1-64 characters of A-Z a-z 0-9 _ . : -'
  end
  local d = m.delivery
  if present(d) and d ~= 'reliable' and d ~= 'droppable' then
    if d ~= 'latest' then return 'delivery must be reliable, droppable or latest' end
    if type(m.key) ~= 'string' or #m.key == 0 or #m.key > 256 then
      return 'a latest update needs a key of 1-256 bytes'
    end
  end
  local c = m.correlation_id
  if present(c) and (type(c) ~= 'string' or #c == 0 or #c > 512 or not utf8_within(c, 128)) then
    return 'correlation_id must be 1-128 characters of UTF-8'
  end
  if repeats_top_key(m, text) then return 'a top-level key is given twice' end
  return nil
end

local function gatehouse_publish(keys, args)
  local channel, text = args[1], args[2]
  if channel == nil or text == nil then
    return redis.error_reply('invalid_update: usage: FCALL gatehouse_publish 0 <channel> <json>')
  end
  local ok, m = pcall(cjson.decode, text)
  if not ok or type(m) ~= 'table' or not string.find(text, '^%s*{') then
    return redis.error_reply('invalid_update: not a JSON object')
  end
  if m.update_ids ~= nil then
    return redis.error_reply('invalid_update: update_ids is added by the log')
  end
  local players = logged_players(m)
  if players == nil then
    redis.call('PUBLISH', channel, text)
    return {}
  end
  local why = refusal(m, text)
  if why then return redis.error_reply('invalid_update: ' .. why) end
  -- Every key after the first is checked before the first write: a log key of another type
  -- (written by something else) must fail the publish whole, not after some players' logs
  -- took it. The first player's XADD fails before anything is written anyway.
  for i = 2, #players do
    local key = channel .. ':log:' .. players[i]
    local t = redis.call('TYPE', key).ok
    if t ~= 'none' and t ~= 'stream' then
      return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not an update log')
    end
  end
  local ids, pairs_json = {}, {}
  for _, p in ipairs(players) do
    local key = channel .. ':log:' .. p
    local id = redis.call('XADD', key, 'MAXLEN', log_size, '*', 'm', text)
    redis.call('PEXPIRE', key, log_ttl_ms)
    ids[#ids + 1] = p
    ids[#ids + 1] = id
    pairs_json[#pairs_json + 1] = cjson.encode(p) .. ':"' .. id .. '"'
  end
  local brace = string.find(text, '{', 1, true)
  redis.call('PUBLISH', channel, string.sub(text, 1, brace) .. '"update_ids":{' ..
    table.concat(pairs_json, ',') .. '},' .. string.sub(text, brace + 1))
  return ids
end

local function gatehouse_read(keys, args)
  local key, after = keys[1], args[1]
  if key == nil or after == nil then return 'gap' end
  local found = redis.pcall('XRANGE', key, after, after)
  if type(found) ~= 'table' or found.err ~= nil or #found == 0 then return 'gap' end
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local at_ms = tonumber(string.match(after, '^(%d+)'))
  if at_ms == nil or now_ms - at_ms > log_ttl_ms then return 'gap' end
  -- Read in pages of `page` entries, the messages summed: past `max_bytes` the answer is
  -- `gap`, so neither this script nor the reply holds more than the budget and a page. A
  -- caller that gives neither (an older gateway) reads the rest in one XRANGE.
  local max_bytes, page = tonumber(args[2]), tonumber(args[3])
  if page ~= nil and page < 1 then page = nil end
  local out, bytes, from = {}, 0, '(' .. after
  while true do
    local entries
    if page then
      entries = redis.call('XRANGE', key, from, '+', 'COUNT', page)
    else
      entries = redis.call('XRANGE', key, from, '+')
    end
    for _, e in ipairs(entries) do
      local fields, message = e[2], ''
      for i = 1, #fields - 1, 2 do
        if fields[i] == 'm' then message = fields[i + 1] end
      end
      bytes = bytes + #message
      if max_bytes and bytes > max_bytes then return 'gap' end
      out[#out + 1] = {e[1], message}
    end
    if page == nil or #entries < page then return out end
    from = '(' .. entries[#entries][1]
  end
end

-- Idempotent commands (docs/protocol.md 6.5), several commands per call (the gateway batches what
-- its pipeline holds: a function call's own cost is paid once). KEYS[1] the command stream;
-- ARGV: the window in seconds, the stream's MAXLEN (~; 0: none), the gateway_id, then per
-- command: its pair (`<bytes of player_id>:<player_id>:<correlation_id>`, or '' for a command
-- never looked up), the count of its extra arguments, the values of type, payload, codec,
-- correlation_id, player_id, connection_id, client and ts_ms, then its extra fields as name
-- value ... (payload_codec, traceparent). The field names are written here, not sent: every
-- argument costs Redis a Lua string and back. The pairs accepted in window
-- w = floor(now / window) are the fields of one hash `<stream>:dedupe:<w>` (one HSET per
-- call, not a key and a SET per command), looked up in this window's hash and the last
-- one's, and valid while their entry id (its time part is Redis's clock at the XADD) is
-- younger than the window; a hash is unlinked once the window after its own has ended.
-- Answers one element per command: a fresh entry's id as a bulk string, a duplicate's first
-- id as a status reply.
local function gatehouse_append(keys, args)
  local stream, window, maxlen, gateway = keys[1], tonumber(args[1]), args[2], args[3]
  if stream == nil or window == nil or window < 1 or gateway == nil then
    return redis.error_reply('ERR usage: FCALL gatehouse_append 1 <stream> <window> <maxlen> ' ..
                             '<gateway_id> (<pair> <extra> <8 values> [name value]...)...')
  end
  local starts, pairs_, looked = {}, {}, {}
  local at, count = 4, #args
  while at <= count do
    local extra = tonumber(args[at + 1])
    if extra == nil or extra < 0 or extra % 2 ~= 0 or at + 9 + extra > count then
      return redis.error_reply('ERR gatehouse_append: a command\'s argument count is wrong')
    end
    starts[#starts + 1] = at
    local pair = args[at]
    pairs_[#pairs_ + 1] = pair
    if pair ~= '' then looked[#looked + 1] = pair end
    at = at + 10 + extra
  end
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local w = math.floor(tonumber(now[1]) / window)
  local current = stream .. ':dedupe:' .. w
  local seen = {}
  if #looked > 0 then
    local a = redis.call('HMGET', current, unpack(looked))
    local b = redis.call('HMGET', stream .. ':dedupe:' .. (w - 1), unpack(looked))
    for i = 1, #looked do
      local id = a[i] or b[i]
      local ms = id and tonumber(string.match(id, '^(%d+)'))
      if ms and now_ms - ms < window * 1000 then seen[looked[i]] = id end
    end
  end
  local out, remember = {}, {}
  for i = 1, #starts do
    local pair, s = pairs_[i], starts[i]
    local first = pair ~= '' and seen[pair]
    if first then
      out[i] = {ok = first}
    else
      local last = s + 9 + tonumber(args[s + 1])
      local id
      if maxlen == '0' then
        id = redis.call('XADD', stream, '*', 'type', args[s + 2], 'payload', args[s + 3],
          'codec', args[s + 4], 'correlation_id', args[s + 5], 'player_id', args[s + 6],
          'connection_id', args[s + 7], 'gateway_id', gateway, 'client', args[s + 8],
          'ts_ms', args[s + 9], unpack(args, s + 10, last))
      else
        id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'type', args[s + 2],
          'payload', args[s + 3], 'codec', args[s + 4], 'correlation_id', args[s + 5],
          'player_id', args[s + 6], 'connection_id', args[s + 7], 'gateway_id', gateway,
          'client', args[s + 8], 'ts_ms', args[s + 9], unpack(args, s + 10, last))
      end
      out[i] = id
      if pair ~= '' then
        seen[pair] = id  -- the same pair later in this call is a duplicate too
        remember[#remember + 1] = pair
        remember[#remember + 1] = id
      end
    end
  end
  if #remember > 0 then
    redis.call('HSET', current, unpack(remember))
    -- A hash is read only while its window or the next is current. The one before the last
    -- is dropped here with UNLINK, which frees it on Redis's background thread: an expiring
    -- hash of millions of pairs is freed on the main thread (unless lazyfree-lazy-expire),
    -- blocking every client for seconds. So Redis holds at most two windows of pairs; the
    -- expiry only catches the last hash once the traffic stops.
    redis.call('UNLINK', stream .. ':dedupe:' .. (w - 2))
    redis.call('EXPIREAT', current, (w + 3) * window)
  end
  return out
end

redis.register_function('gatehouse_publish', gatehouse_publish)
redis.register_function('gatehouse_append', gatehouse_append)
redis.register_function{function_name = 'gatehouse_read', callback = gatehouse_read,
                        flags = {'no-writes'}}
)LUA";

void replace(std::string& text, std::string_view placeholder, const std::string& value) {
    for (auto at = text.find(placeholder); at != std::string::npos;
         at = text.find(placeholder, at + value.size())) {
        text.replace(at, placeholder.size(), value);
    }
}

}  // namespace

std::string update_log_library(std::size_t log_size, std::chrono::seconds log_ttl) {
    std::string text(library_template);
    replace(text, "@SIZE@", std::to_string(log_size));
    replace(text, "@TTL_MS@", std::to_string(log_ttl.count() * 1000));
    return text;
}

std::string update_log_key(std::string_view channel, std::string_view player_id) {
    std::string key;
    key.reserve(channel.size() + 5 + player_id.size());
    key.append(channel).append(":log:").append(player_id);
    return key;
}

void format_logged_publish(std::string& out, std::string_view channel, std::string_view message) {
    format_array_header(out, 5);
    format_bulk(out, "FCALL");
    format_bulk(out, "gatehouse_publish");
    format_bulk(out, "0");
    format_bulk(out, channel);
    format_bulk(out, message);
}

void format_log_read(std::string& out, std::string_view channel, std::string_view player_id,
                     std::string_view after_id, std::size_t max_bytes) {
    format_array_header(out, 7);
    format_bulk(out, "FCALL_RO");
    format_bulk(out, "gatehouse_read");
    format_bulk(out, "1");
    format_bulk(out, update_log_key(channel, player_id));
    format_bulk(out, after_id);
    format_bulk(out, std::to_string(max_bytes));
    format_bulk(out, std::to_string(log_read_page));
}

std::error_code parse_logged_publish(const reply& r, update_ids& out) {
    out.clear();
    if (r.is_error("invalid_update")) return errc::invalid_update;
    if (r.kind != reply_kind::array || r.elements.size() % 2 != 0) return errc::bus_unavailable;
    out.reserve(r.elements.size() / 2);
    for (std::size_t i = 0; i < r.elements.size(); i += 2) {
        const auto& player = r.elements[i];
        const auto& id = r.elements[i + 1];
        if (player.kind != reply_kind::string || id.kind != reply_kind::string) {
            out.clear();
            return errc::bus_unavailable;
        }
        out.emplace_back(player.str, id.str);
    }
    return {};
}

log_read_result parse_log_read(const reply& r) {
    log_read_result result;
    if (r.is_text("gap")) return result;  // status gap is the default
    result.status = log_read_status::unavailable;
    if (r.kind != reply_kind::array) return result;
    result.updates.reserve(r.elements.size());
    for (const auto& e : r.elements) {
        if (e.kind != reply_kind::array || e.elements.size() != 2 ||
            e.elements[0].kind != reply_kind::string || e.elements[1].kind != reply_kind::string) {
            result.updates.clear();
            return result;
        }
        result.updates.push_back({e.elements[0].str, e.elements[1].str});
    }
    result.status = log_read_status::replay;
    return result;
}

}  // namespace gatehouse::detail::redis

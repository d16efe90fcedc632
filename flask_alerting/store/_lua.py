"""The Lua scripts of the Redis store: each operation is one atomic ``EVALSHA``.

Every script receives the key prefix as ``ARGV[1]`` and the caller's clock as ``ARGV[2]``;
keys built from the prefix share its ``{hash tag}``, so they live in one slot. Numbers are
passed and stored as the caller's exact decimal text; sums and ends computed here are
written with 17 significant digits (exact for doubles). Layout, under the prefix ``P``:

* ``P due`` sorted set fingerprint -> window end; ``P w:<fp>`` hash: the window;
* ``P procs`` sorted set process -> lease deadline;
* ``P obq`` sorted set record id -> created; ``P r:<id>`` hash: a record;
  ``P o:<owner>`` set of its records; ``P owners`` set of owners with records;
  ``P seq`` record id counter; ``P dropped`` records dropped and not yet told.
"""

from __future__ import annotations

_COMMON = """
local P = ARGV[1]
local now = tonumber(ARGV[2])
local function f(x) return string.format('%.17g', x) end
local function ttl(x) return math.max(1, math.ceil(x)) end
local function drop_record(id, obq, owners)
  local rkey = P .. 'r:' .. id
  local o = redis.call('HGET', rkey, 'owner')
  redis.call('DEL', rkey)
  redis.call('ZREM', obq, id)
  if o then
    redis.call('SREM', P .. 'o:' .. o, id)
    if redis.call('SCARD', P .. 'o:' .. o) == 0 then redis.call('SREM', owners, o) end
  end
end
local function prune(obq, owners, dropped, maxage, maxrec, room)
  local n = 0
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', obq, '-inf', '(' .. f(now - maxage))) do
    drop_record(id, obq, owners)
    n = n + 1
  end
  local excess = redis.call('ZCARD', obq) + room - maxrec
  if excess > 0 then
    for _, id in ipairs(redis.call('ZRANGE', obq, 0, excess - 1)) do
      drop_record(id, obq, owners)
      n = n + 1
    end
  end
  if n > 0 then
    redis.call('INCRBY', dropped, n)
    redis.call('EXPIRE', dropped, ttl(maxage))
  end
end
local function new_record(seq, obq, owners, owner, life, fields)
  local id = string.format('%012d', redis.call('INCR', seq))
  local rkey = P .. 'r:' .. id
  redis.call('HSET', rkey, 'owner', owner, 'created', ARGV[2], unpack(fields))
  redis.call('EXPIRE', rkey, ttl(life))
  redis.call('ZADD', obq, ARGV[2], id)
  redis.call('SADD', P .. 'o:' .. owner, id)
  redis.call('EXPIRE', P .. 'o:' .. owner, ttl(life))
  redis.call('SADD', owners, owner)
  for _, k in ipairs({obq, owners, seq}) do redis.call('EXPIRE', k, ttl(life)) end
  return id
end
"""

#: KEYS: due. ARGV: P, now, owner, max windows, retention, then (fp, length, template)*.
OPEN = _COMMON + """
local owner, maxw, keep = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local size = redis.call('ZCARD', KEYS[1])
local out, longest = {}, 0
for i = 6, #ARGV, 3 do
  local fp, len = ARGV[i], tonumber(ARGV[i + 1])
  local key = P .. 'w:' .. fp
  local cur = redis.call('HMGET', key, 'end', 'count')
  local e = tonumber(cur[1])
  if e and (e > now or (tonumber(cur[2]) or 0) > 0) then
    out[#out + 1] = {0, cur[1]}
  elseif (not e) and size >= maxw then
    out[#out + 1] = {1, ''}
  else
    if not e then size = size + 1 end
    local en = f(now + len)
    redis.call('DEL', key)
    redis.call('HSET', key, 'start', ARGV[2], 'end', en, 'length', ARGV[i + 1], 'owner', owner,
      'tpl', ARGV[i + 2], 'count', 0, 'nv', 0, 'total', 0)
    redis.call('EXPIRE', key, ttl(len + keep))
    redis.call('ZADD', KEYS[1], en, fp)
    longest = math.max(longest, len)
    out[#out + 1] = {1, en}
  end
end
if longest > 0 then redis.call('EXPIRE', KEYS[1], ttl(longest + keep)) end
return out
"""

#: ARGV: P, now, then one JSON array of [fp, count, first, last, nv, total, high, low,
#: template or null] (one argument: packing hundreds of arguments costs the client more
#: than the server takes to decode them).
ADD = _COMMON + """
local out = {}
for _, it in ipairs(cjson.decode(ARGV[3])) do
  local key = P .. 'w:' .. it[1]
  local cur = redis.call('HMGET', key, 'end', 'first', 'last', 'high', 'low')
  if cur[1] then
    local set = {}
    local function keep(field, v, current, lower)
      local c = tonumber(current)
      if (not c) or (lower and v < c) or ((not lower) and v > c) then
        set[#set + 1] = field
        set[#set + 1] = f(v)
      end
    end
    redis.call('HINCRBY', key, 'count', string.format('%d', it[2]))
    keep('first', it[3], cur[2], true)
    keep('last', it[4], cur[3], false)
    if it[5] > 0 then
      redis.call('HINCRBY', key, 'nv', string.format('%d', it[5]))
      redis.call('HINCRBYFLOAT', key, 'total', f(it[6]))
      keep('high', it[7], cur[4], false)
      keep('low', it[8], cur[5], true)
    end
    if it[9] ~= cjson.null then
      set[#set + 1] = 'tpl'
      set[#set + 1] = it[9]
    end
    if #set > 0 then redis.call('HSET', key, unpack(set)) end
    out[#out + 1] = cur[1]
  else
    out[#out + 1] = ''
  end
end
return out
"""

#: KEYS: due, obq, seq, owners, dropped. ARGV: P, now, cutoff, limit, owner, notifiers,
#: retention, max age, max records, drain ("1": every window, none reopened).
CLAIM = _COMMON + """
local owner, notifiers, keep = ARGV[5], ARGV[6], tonumber(ARGV[7])
local maxage, maxrec, drain = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10] == '1'
local fps
if drain then
  fps = redis.call('ZRANGE', KEYS[1], 0, -1)
else
  fps = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
end
local out = {}
for _, fp in ipairs(fps) do
  local key = P .. 'w:' .. fp
  local h = redis.call('HGETALL', key)
  if #h == 0 then
    redis.call('ZREM', KEYS[1], fp)
  else
    local w = {}
    for j = 1, #h, 2 do w[h[j]] = h[j + 1] end
    local count = tonumber(w['count']) or 0
    local next_end = ''
    if count > 0 and not drain then
      local len = tonumber(w['length'])
      next_end = f(now + len)
      redis.call('HDEL', key, 'first', 'last', 'high', 'low')
      redis.call('HSET', key, 'start', ARGV[2], 'end', next_end, 'owner', owner, 'count', 0,
        'nv', 0, 'total', 0)
      redis.call('EXPIRE', key, ttl(len + keep))
      redis.call('ZADD', KEYS[1], next_end, fp)
      redis.call('EXPIRE', KEYS[1], ttl(len + keep))
    else
      redis.call('DEL', key)
      redis.call('ZREM', KEYS[1], fp)
    end
    if count > 0 then
      local fields = {'kind', 'digest', 'notifiers', notifiers, 'fp', fp, 'count', w['count'],
        'first', w['first'] or '', 'last', w['last'] or '', 'nv', w['nv'] or '0',
        'total', w['total'] or '0', 'high', w['high'] or '', 'low', w['low'] or '',
        'start', w['start'], 'end', w['end'], 'next_end', next_end, 'tpl', w['tpl'] or ''}
      local id = new_record(KEYS[3], KEYS[2], KEYS[4], owner, maxage + keep, fields)
      fields[#fields + 1] = 'id'
      fields[#fields + 1] = id
      out[#out + 1] = fields
    end
  end
end
if #out > 0 then prune(KEYS[2], KEYS[4], KEYS[5], maxage, maxrec, 0) end
local more = 0
if not drain and #redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[3], 'LIMIT', 0, 1) > 0 then
  more = 1
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {out, more, nxt[2] or ''}
"""

#: KEYS: due. ARGV: P, now.
WINDOWS = _COMMON + """
local out = {}
local fps = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, fp in ipairs(fps) do
  local w = redis.call('HMGET', P .. 'w:' .. fp, 'start', 'end', 'count', 'owner')
  if w[2] then out[#out + 1] = {fp, w[1], w[2], w[3], w[4]} end
end
return out
"""

#: KEYS: procs. ARGV: P, now, name, deadline, retention.
REGISTER = _COMMON + """
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. f(now - tonumber(ARGV[5])))
redis.call('EXPIRE', KEYS[1], ttl(tonumber(ARGV[4]) - now + tonumber(ARGV[5])))
return 1
"""

#: KEYS: procs. ARGV: P, now, me, then (name, "dead" | "alive")* judged on this host.
#: Others count by their lease; those expired are removed. Returns 1 when none is left.
DEREGISTER = _COMMON + """
redis.call('ZREM', KEYS[1], ARGV[3])
local verdict = {}
for i = 4, #ARGV, 2 do verdict[ARGV[i]] = ARGV[i + 1] end
local left = 0
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for j = 1, #members, 2 do
  local name, deadline = members[j], tonumber(members[j + 1])
  local v = verdict[name]
  if v == 'alive' or (v == nil and deadline > now) then
    left = left + 1
  else
    redis.call('ZREM', KEYS[1], name)
  end
end
if left == 0 then return 1 end
return 0
"""

#: KEYS: obq, seq, owners, dropped. ARGV: P, now, owner, max age, max records, retention,
#: then (payload, notifiers)*. Returns {ids, dropped}.
PUT = _COMMON + """
local owner, maxage, maxrec, keep = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
prune(KEYS[1], KEYS[3], KEYS[4], maxage, maxrec, (#ARGV - 6) / 2)
local ids = {}
for i = 7, #ARGV, 2 do
  ids[#ids + 1] = new_record(KEYS[2], KEYS[1], KEYS[3], owner, maxage + keep,
    {'kind', 'alert', 'payload', ARGV[i], 'notifiers', ARGV[i + 1]})
end
prune(KEYS[1], KEYS[3], KEYS[4], maxage, maxrec, 0)
local dropped = tonumber(redis.call('GET', KEYS[4]) or '0')
redis.call('DEL', KEYS[4])
return {ids, dropped}
"""

#: KEYS: obq, owners, dropped. ARGV: P, now, max age, max records. Returns the count.
PRUNE = _COMMON + """
prune(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[3]), tonumber(ARGV[4]), 0)
local dropped = tonumber(redis.call('GET', KEYS[3]) or '0')
redis.call('DEL', KEYS[3])
return dropped
"""

#: KEYS: obq, owners. ARGV: P, now, notifiers ("" deletes), then ids. Returns how many existed.
OWE = _COMMON + """
local n = 0
for i = 4, #ARGV do
  local rkey = P .. 'r:' .. ARGV[i]
  if redis.call('EXISTS', rkey) == 1 then
    n = n + 1
    if ARGV[3] == '' then
      drop_record(ARGV[i], KEYS[1], KEYS[2])
    else
      redis.call('HSET', rkey, 'notifiers', ARGV[3])
    end
  end
end
return n
"""

#: KEYS: procs, obq, owners, dropped. ARGV: P, now, me, limit, max age, max records,
#: retention, then (owner, "1" when this host saw it dead, else "0": its lease decides)*.
CLAIM_ORPHANS = _COMMON + """
local me, limit = ARGV[3], tonumber(ARGV[4])
prune(KEYS[2], KEYS[3], KEYS[4], tonumber(ARGV[5]), tonumber(ARGV[6]), 0)
local found = {}
for i = 8, #ARGV, 2 do
  local o = ARGV[i]
  local deadline = tonumber(redis.call('ZSCORE', KEYS[1], o) or '')
  if o ~= me and (ARGV[i + 1] == '1' or deadline == nil or deadline <= now) then
    for _, id in ipairs(redis.call('SMEMBERS', P .. 'o:' .. o)) do
      local created = redis.call('HGET', P .. 'r:' .. id, 'created')
      if created then found[#found + 1] = {tonumber(created), id, o} end
    end
  end
end
table.sort(found, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
local out = {}
local life = ttl(tonumber(ARGV[5]) + tonumber(ARGV[7]))
for i = 1, math.min(limit, #found) do
  local id, o = found[i][2], found[i][3]
  local rkey = P .. 'r:' .. id
  redis.call('HSET', rkey, 'owner', me, 'recovered_from', o)
  redis.call('SMOVE', P .. 'o:' .. o, P .. 'o:' .. me, id)
  redis.call('EXPIRE', P .. 'o:' .. me, life)
  redis.call('SADD', KEYS[3], me)
  if redis.call('SCARD', P .. 'o:' .. o) == 0 then redis.call('SREM', KEYS[3], o) end
  local h = redis.call('HGETALL', rkey)
  h[#h + 1] = 'id'
  h[#h + 1] = id
  out[#out + 1] = h
end
return out
"""

#: KEYS: obq. ARGV: P, now. Every record, oldest first.
RECORDS = _COMMON + """
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local h = redis.call('HGETALL', P .. 'r:' .. id)
  if #h > 0 then
    h[#h + 1] = 'id'
    h[#h + 1] = id
    out[#out + 1] = h
  end
end
return out
"""

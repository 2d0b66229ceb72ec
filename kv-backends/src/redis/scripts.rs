//! The Lua scripts that make conditional writes atomic inside Redis, one round trip each.
//!
//! Every key a script touches carries the namespace's hash tag, so each script runs within one
//! cluster slot. Records are hashes with the fields `v` (value), `m` (metadata JSON, absent when
//! there is none), `e` (expiration, unix seconds, absent when none) and `ver` (version).

use ::redis::Script;

/// Shared Lua: the live version of a record, or false when it is absent or expired at `now`.
const LIVE_VERSION: &str = r#"
local function live_version(key, now)
  local cur = redis.call('HMGET', key, 'ver', 'e')
  if not cur[1] then return false end
  if cur[2] and tonumber(cur[2]) <= now then return false end
  return cur[1]
end
"#;

/// Shared Lua: whether one record's arguments can be written as they are. Every argument a
/// write uses is checked here, before the script's first write, because Redis does not roll a
/// script back: a command failing halfway (a `PEXPIRE` of milliseconds beyond an `i64`) would
/// leave the record replaced and its TTL gone. The bounds are those of
/// [`MAX_EXPIRATION_SECS`](super::MAX_EXPIRATION_SECS): 2^53 - 1 ms, beyond which Lua's
/// doubles are no longer exact.
const VALID_RECORD: &str = r#"
local function valid_record(has_meta, expiration, pttl)
  if has_meta ~= '0' and has_meta ~= '1' then return false end
  if expiration == '' then return pttl == '' end
  if not string.match(expiration, '^%d+$') or #expiration > 13 then return false end
  if tonumber(expiration) > 9007199254740 then return false end
  if not string.match(pttl, '^[1-9]%d*$') or #pttl > 16 then return false end
  return tonumber(pttl) <= 9007199254740991
end
"#;

/// Writes one record, replacing whatever was there; its arguments have passed `valid_record`.
///
/// The commands that can still fail come first: `INCR` (a counter that is not an integer) and
/// `ZADD` (an index of another type). If one does, the record is untouched; at most the counter
/// has moved, which is harmless, since versions need to be unique, not consecutive. What follows
/// cannot fail: `DEL`, one `HSET` of every field, and a `PEXPIRE` of validated milliseconds.
const WRITE_RECORD: &str = r#"
local function write_record(key, index, versions, name, value, has_meta, meta, expiration, pttl)
  local ver = redis.call('INCR', versions)
  redis.call('ZADD', index, 0, name)
  redis.call('DEL', key)
  local fields = {'v', value, 'ver', ver}
  if has_meta == '1' then
    fields[#fields + 1] = 'm'
    fields[#fields + 1] = meta
  end
  if expiration ~= '' then
    fields[#fields + 1] = 'e'
    fields[#fields + 1] = expiration
  end
  redis.call('HSET', key, unpack(fields))
  if expiration ~= '' then redis.call('PEXPIRE', key, pttl) end
  return ver
end
"#;

/// `put`: KEYS = record, index, versions, live marker;
/// ARGV = name, mode (`overwrite` | `absent` | `version`), expected version, now (unix
/// seconds), value, has metadata (`0`/`1`), metadata, expiration (or empty), TTL in ms (or
/// empty). Returns the new version, -1 when the condition fails, -2 when the namespace is gone,
/// -3 when an argument is invalid (then nothing is written, whatever the condition).
const PUT: &str = r#"
if redis.call('EXISTS', KEYS[4]) == 0 then return -2 end
if not valid_record(ARGV[6], ARGV[8], ARGV[9]) then return -3 end
local mode = ARGV[2]
if mode ~= 'overwrite' then
  local live = live_version(KEYS[1], tonumber(ARGV[4]))
  if mode == 'absent' and live then return -1 end
  if mode == 'version' and live ~= ARGV[3] then return -1 end
end
return write_record(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9])
"#;

/// `delete`: KEYS = record, index; ARGV = name, mode, expected version, now.
/// Returns 1 when a live entry was removed, 0 when there was none, -1 when the condition fails.
/// `ZREM` (which fails on an index of another type) runs before the record is deleted.
const DELETE: &str = r#"
local mode = ARGV[2]
local live = live_version(KEYS[1], tonumber(ARGV[4]))
if mode == 'absent' and live then return -1 end
if mode == 'version' and live ~= ARGV[3] then return -1 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
if live then return 1 else return 0 end
"#;

/// `put_many`: KEYS = index, versions, live marker, then one record key per item;
/// ARGV = six per item: name, value, has metadata, metadata, expiration, TTL in ms.
/// Returns the number written, -2 when the namespace is gone, -3 when any item's arguments are
/// invalid. All or nothing: every item is validated before the first is written, and once the
/// first item's `INCR` and `ZADD` succeed the others' cannot fail (same counter, same index).
const PUT_MANY: &str = r#"
if redis.call('EXISTS', KEYS[3]) == 0 then return -2 end
local n = #KEYS - 3
if #ARGV ~= n * 6 then return -3 end
for i = 1, n do
  local a = (i - 1) * 6
  if not valid_record(ARGV[a + 3], ARGV[a + 5], ARGV[a + 6]) then return -3 end
end
for i = 1, n do
  local a = (i - 1) * 6
  write_record(KEYS[i + 3], KEYS[1], KEYS[2], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6])
end
return n
"#;

/// Drops names from the index whose records are gone (expired by Redis), without racing a
/// writer that re-created one: KEYS = index, then one record key per name; ARGV = the names.
const PRUNE_INDEX: &str = r#"
local removed = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i - 1])
  end
end
return removed
"#;

/// Creates a namespace unless the title is taken: KEYS = catalog, live marker; ARGV = id,
/// title. Returns 1, or 0 when the title is taken.
const CREATE_NAMESPACE: &str = r#"
for _, title in ipairs(redis.call('HVALS', KEYS[1])) do
  if title == ARGV[2] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], '1')
return 1
"#;

/// Renames a namespace: KEYS = catalog; ARGV = id, title. Returns 1, 0 when the title is taken
/// by another, -1 when the id is unknown.
const RENAME_NAMESPACE: &str = r#"
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return -1 end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i + 1] == ARGV[2] and all[i] ~= ARGV[1] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"#;

/// The compiled scripts (their SHA-1s are computed once).
#[derive(Debug)]
pub(crate) struct Scripts {
    pub put: Script,
    pub delete: Script,
    pub put_many: Script,
    pub prune_index: Script,
    pub create_namespace: Script,
    pub rename_namespace: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        let with = |helpers: &[&str], body: &str| {
            let mut source = helpers.concat();
            source.push_str(body);
            Script::new(&source)
        };
        Scripts {
            put: with(&[LIVE_VERSION, VALID_RECORD, WRITE_RECORD], PUT),
            delete: with(&[LIVE_VERSION], DELETE),
            put_many: with(&[VALID_RECORD, WRITE_RECORD], PUT_MANY),
            prune_index: Script::new(PRUNE_INDEX),
            create_namespace: Script::new(CREATE_NAMESPACE),
            rename_namespace: Script::new(RENAME_NAMESPACE),
        }
    }
}

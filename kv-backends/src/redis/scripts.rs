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

/// Writes one record, replacing whatever was there.
/// Used with the record key as `key` and the item's arguments at `base`.
const WRITE_RECORD: &str = r#"
local function write_record(key, index, versions, name, value, has_meta, meta, expiration, pttl)
  local ver = redis.call('INCR', versions)
  redis.call('DEL', key)
  redis.call('HSET', key, 'v', value, 'ver', ver)
  if has_meta == '1' then redis.call('HSET', key, 'm', meta) end
  if expiration ~= '' then
    redis.call('HSET', key, 'e', expiration)
    local ms = tonumber(pttl)
    if ms < 1 then ms = 1 end
    redis.call('PEXPIRE', key, ms)
  end
  redis.call('ZADD', index, 0, name)
  return ver
end
"#;

/// `put`: KEYS = record, index, versions, live marker;
/// ARGV = name, mode (`overwrite` | `absent` | `version`), expected version, now (unix
/// seconds), value, has metadata (`0`/`1`), metadata, expiration (or empty), TTL in ms.
/// Returns the new version, -1 when the condition fails, -2 when the namespace is gone.
const PUT: &str = r#"
if redis.call('EXISTS', KEYS[4]) == 0 then return -2 end
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
const DELETE: &str = r#"
local mode = ARGV[2]
local live = live_version(KEYS[1], tonumber(ARGV[4]))
if mode == 'absent' and live then return -1 end
if mode == 'version' and live ~= ARGV[3] then return -1 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if live then return 1 else return 0 end
"#;

/// `put_many`: KEYS = index, versions, live marker, then one record key per item;
/// ARGV = six per item: name, value, has metadata, metadata, expiration, TTL in ms.
/// Returns the number written, -2 when the namespace is gone.
const PUT_MANY: &str = r#"
if redis.call('EXISTS', KEYS[3]) == 0 then return -2 end
local n = #KEYS - 3
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
            put: with(&[LIVE_VERSION, WRITE_RECORD], PUT),
            delete: with(&[LIVE_VERSION], DELETE),
            put_many: with(&[WRITE_RECORD], PUT_MANY),
            prune_index: Script::new(PRUNE_INDEX),
            create_namespace: Script::new(CREATE_NAMESPACE),
            rename_namespace: Script::new(RENAME_NAMESPACE),
        }
    }
}

//! The Lua scripts: only where a condition must be checked and applied atomically inside
//! Redis (a conditional put or delete, pruning the index, the namespace catalog).
//!
//! A conditional put or delete touches the record's key alone; the scripts that touch a
//! bucket's index and records together carry the bucket's tag, so each runs within one
//! cluster slot. A record is one string, `r1 VERSION EXPIRATION|- METALEN\n`, then
//! the metadata JSON, then the value (see `layout.rs`); the scripts read only its header, with
//! `GETRANGE`, so a conditional write of a 25 MiB value does not copy the old one into Lua.
//! A deleted namespace's bucket indexes are string tombstones: a script finds one with `TYPE`.

use ::redis::Script;

/// Shared Lua: the live version of a record (its decimal text), or false when the record is
/// absent or expired at `now`. Versions stay text: they are 64-bit, beyond Lua's doubles.
const LIVE_VERSION: &str = r#"
local function live_version(key, now)
  local head = redis.call('GETRANGE', key, 0, 63)
  if head == '' then return false end
  local ver, exp = string.match(head, '^r1 (%d+) ([%d-]+) %d+\n')
  if not ver then return redis.error_reply('ERR not a tower-kv record: ' .. key) end
  if exp ~= '-' and tonumber(exp) <= now then return false end
  return ver
end
"#;

/// Shared Lua: whether a TTL in milliseconds can be applied as it is (empty: none). Checked
/// before the first write, because Redis does not roll a script back: a `SET ... PX` refused
/// halfway would leave the index changed. The bound is that of
/// [`MAX_EXPIRATION_SECS`](super::MAX_EXPIRATION_SECS): 2^53 - 1 ms.
const VALID_PTTL: &str = r#"
local function valid_pttl(pttl)
  if pttl == '' then return true end
  if not string.match(pttl, '^[1-9]%d*$') or #pttl > 16 then return false end
  return tonumber(pttl) <= 9007199254740991
end
"#;

/// `put`: KEYS = the record; ARGV = mode (`overwrite` | `absent` | `version`), expected
/// version, now (unix seconds), the record, TTL in ms (or empty), the record's new version.
/// Returns 1 when written, -1 when the condition fails, -3 when the TTL is invalid (then nothing
/// is written, whatever the condition).
///
/// One key only, so a slot migration never refuses it (a multi-key script meets `TRYAGAIN` for
/// as long as the slot's keys are split between two nodes): the caller names the record in its
/// bucket's index after this. A record that already carries the new version was written by this
/// very call, sent again after its reply was lost (a connection dropped, a redirection): that
/// is reported as written, not as a failed condition, and nothing is written twice.
const PUT: &str = r#"
if not valid_pttl(ARGV[5]) then return -3 end
local mode = ARGV[1]
if mode ~= 'overwrite' then
  local live = live_version(KEYS[1], tonumber(ARGV[3]))
  if type(live) == 'table' then return live end
  if live and live == ARGV[6] then return 1 end
  if mode == 'absent' and live then return -1 end
  if mode == 'version' and live ~= ARGV[2] then return -1 end
end
if ARGV[5] == '' then
  redis.call('SET', KEYS[1], ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
end
return 1
"#;

/// `delete`: KEYS = the record; ARGV = mode, expected version, now. Returns 1 when a live entry
/// was removed, 0 when there was none, -1 when the condition fails. One key only (see `put`):
/// the caller then prunes the name from the bucket's index with `PRUNE_INDEX`.
const DELETE: &str = r#"
local mode = ARGV[1]
local live = live_version(KEYS[1], tonumber(ARGV[3]))
if type(live) == 'table' then return live end
if mode == 'absent' and live then return -1 end
if mode == 'version' and live ~= ARGV[2] then return -1 end
redis.call('DEL', KEYS[1])
if live then return 1 else return 0 end
"#;

/// Drops names from a bucket's index whose records are gone (deleted, expired by Redis, or a
/// put whose condition failed on an absent record), without racing a writer that re-created
/// one: KEYS = index, then one record key per name; ARGV = the names. A writer names its record
/// after writing it, so a record present when this runs keeps its name.
const PRUNE_INDEX: &str = r#"
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then return 0 end
local removed = 0
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i - 1])
  end
end
return removed
"#;

/// Retires one bucket of a deleted namespace: KEYS = index, retired index. Moves the names to
/// the retired index (merging with one an interrupted deletion left) and leaves a string
/// tombstone where the index was, so a stale handle's `ZADD` fails from now on.
const RETIRE_BUCKET: &str = r#"
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'zset' then
  redis.call('ZUNIONSTORE', KEYS[2], 2, KEYS[2], KEYS[1])
end
redis.call('SET', KEYS[1], 'deleted')
return redis.call('ZCARD', KEYS[2])
"#;

/// Creates a namespace unless the title is taken: KEYS = catalog; ARGV = id, title.
/// Returns 1, or 0 when the title is taken.
const CREATE_NAMESPACE: &str = r#"
for _, title in ipairs(redis.call('HVALS', KEYS[1])) do
  if title == ARGV[2] then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
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
    pub prune_index: Script,
    pub retire_bucket: Script,
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
            put: with(&[LIVE_VERSION, VALID_PTTL], PUT),
            delete: with(&[LIVE_VERSION], DELETE),
            prune_index: Script::new(PRUNE_INDEX),
            retire_bucket: Script::new(RETIRE_BUCKET),
            create_namespace: Script::new(CREATE_NAMESPACE),
            rename_namespace: Script::new(RENAME_NAMESPACE),
        }
    }
}

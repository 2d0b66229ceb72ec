//! `kv-crash-writer STORE_DIR START`: writes keys `k{START:06}`, `k{START+1:06}`, ... into
//! namespace `crash` of the file store in `STORE_DIR` until killed, printing each key's index on
//! its own line (flushed) only after its `put` has returned `Ok`, that is after the write is
//! durable. The crash test (`tests/file_crash.rs`) kills it with SIGKILL at random points and
//! checks that every acknowledged write survived; it shares [`spec`] with this binary to know
//! what each key must hold.

use std::io::Write;
use std::process::ExitCode;

use kv_backends::file::FileBackend;
use kv_core::Store;

/// What the writer writes for each index, shared with the crash test.
pub mod spec {
    use std::time::Duration;

    use kv_core::PutOptions;
    use serde_json::{json, Value};

    /// The namespace written to.
    pub const NAMESPACE: &str = "crash";

    /// How long the keys with a TTL live (long enough never to expire during a test).
    pub const TTL: Duration = Duration::from_secs(24 * 3600);

    /// The key of index `i`.
    pub fn key(i: u64) -> String {
        format!("k{i:06}")
    }

    /// The index a key names, when it is one of ours.
    pub fn index(key: &str) -> Option<u64> {
        key.strip_prefix('k')
            .filter(|digits| digits.len() == 6)?
            .parse()
            .ok()
    }

    /// The value of index `i`: a recognizable text, large (several pages) every 25th index.
    pub fn value(i: u64) -> Vec<u8> {
        let unit = format!("value-{i}|");
        let repeat = if i % 25 == 0 {
            100_000 / unit.len()
        } else {
            1 + (i % 7) as usize
        };
        unit.repeat(repeat).into_bytes()
    }

    /// The metadata of index `i`: an object, JSON `null`, or none.
    pub fn metadata(i: u64) -> Option<Value> {
        match i % 3 {
            0 => Some(json!({"i": i, "even": i % 2 == 0})),
            1 => Some(Value::Null),
            _ => None,
        }
    }

    /// Whether index `i` is written with [`TTL`].
    pub fn has_ttl(i: u64) -> bool {
        i % 5 == 0
    }

    /// The options index `i` is written with.
    pub fn options(i: u64) -> PutOptions {
        let mut options = PutOptions::new();
        if let Some(metadata) = metadata(i) {
            options = options.metadata(metadata);
        }
        if has_ttl(i) {
            options = options.ttl(TTL);
        }
        options
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(start)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u64>().ok()))
    else {
        eprintln!("usage: kv-crash-writer STORE_DIR START");
        return ExitCode::from(2);
    };
    match run(dir, start).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kv-crash-writer: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(dir: &str, start: u64) -> kv_core::Result<()> {
    let store = Store::new(FileBackend::open(dir)?);
    let ns = store.namespace(spec::NAMESPACE).await?;
    let mut stdout = std::io::stdout().lock();
    for i in start.. {
        let outcome = ns
            .put_with(&spec::key(i), spec::value(i), spec::options(i))
            .await?;
        assert!(outcome.version().is_some(), "an unconditional put happens");
        // Acknowledge only now that the write is durable. A closed pipe ends the writer.
        if writeln!(stdout, "{i}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
    Ok(())
}

//! The file store survives being killed: a writer process (`kv-crash-writer`) is SIGKILLed at
//! random points, round after round on the same store, and every write it acknowledged must be
//! there afterwards, exactly, with nothing corrupt. While the writer runs, the store is locked
//! against a second opener.
#![cfg(unix)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kv_backends::file::FileBackend;
use kv_core::{KvError, Store};
use listing::collect_keys;

#[path = "../src/bin/crash_writer.rs"]
#[allow(dead_code)]
mod crash_writer;

use crash_writer::spec;

const ROUNDS: u64 = 20;
/// How long to wait for the next acknowledgement before declaring the writer stuck.
const ACK_TIMEOUT: Duration = Duration::from_secs(20);

/// A running writer and the acknowledgements it prints.
struct Writer {
    child: Child,
    acks: mpsc::Receiver<u64>,
    reader: JoinHandle<()>,
}

impl Writer {
    fn spawn(dir: &Path, start: u64) -> Writer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kv-crash-writer"))
            .arg(dir)
            .arg(start.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn kv-crash-writer");
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, acks) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let index = line
                    .trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("writer printed {line:?}"));
                if sender.send(index).is_err() {
                    break;
                }
            }
        });
        Writer {
            child,
            acks,
            reader,
        }
    }

    /// The next acknowledged index; panics if the writer stops or stalls.
    fn next_ack(&mut self) -> u64 {
        match self.acks.recv_timeout(ACK_TIMEOUT) {
            Ok(index) => index,
            Err(error) => {
                let status = self.child.try_wait();
                let _ = self.child.kill();
                panic!("no acknowledgement from the writer ({error}); its status: {status:?}");
            }
        }
    }

    /// SIGKILLs the writer and returns the acknowledgements it printed before dying that were
    /// not read yet.
    fn kill(mut self) -> Vec<u64> {
        self.child.kill().expect("SIGKILL the writer");
        let status = self.child.wait().expect("reap the writer");
        assert!(!status.success(), "the writer was killed, not finished");
        self.reader.join().expect("stdout reader");
        self.acks.try_iter().collect()
    }
}

/// A small deterministic generator, seeded per run so rounds vary between runs; the seed is
/// printed to reproduce a failure.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

mod listing {
    //! Collecting a listing without depending on `futures`.

    use kv_core::{ListOptions, Namespace};

    /// Every key of the namespace, page by page (small pages, to exercise the cursor).
    pub async fn collect_keys(ns: &Namespace) -> Vec<kv_core::KeyInfo> {
        let mut keys = Vec::new();
        let mut options = ListOptions::new().limit(97);
        loop {
            let page = ns.list(&options).await.expect("listing after a crash");
            keys.extend(page.keys);
            match page.cursor {
                Some(cursor) => options.cursor = Some(cursor),
                None => return keys,
            }
        }
    }
}

/// Opens the store after a kill and checks it: every index up to `acked` holds exactly what the
/// writer wrote, the one after may or may not exist (written but not acknowledged) but is whole
/// if it does, nothing else exists, and the listing is ordered. Returns the highest index
/// present.
async fn verify(dir: &Path, acked: Option<u64>) -> Option<u64> {
    let backend = tokio::task::spawn_blocking({
        let dir = dir.to_owned();
        move || FileBackend::open(dir)
    })
    .await
    .unwrap()
    .expect("reopening after a kill");
    let store = Store::new(backend);
    let ns = store.namespace(spec::NAMESPACE).await.unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let listed = collect_keys(&ns).await;
    let names: Vec<&str> = listed.iter().map(|k| k.name.as_str()).collect();
    assert!(
        names.windows(2).all(|pair| pair[0] < pair[1]),
        "listing is strictly ordered"
    );
    let indexes: BTreeSet<u64> = names
        .iter()
        .map(|name| spec::index(name).unwrap_or_else(|| panic!("stray key {name:?}")))
        .collect();
    let required = acked.map_or(0, |a| a + 1);
    for i in 0..required {
        assert!(
            indexes.contains(&i),
            "acknowledged key {} is missing",
            spec::key(i)
        );
    }
    let highest = indexes.last().copied();
    assert!(
        highest.map_or(true, |h| h <= required),
        "only the one unacknowledged write may be present: found {highest:?}, acknowledged up to {acked:?}"
    );

    for info in &listed {
        let i = spec::index(&info.name).unwrap();
        assert_eq!(
            info.metadata,
            spec::metadata(i),
            "listed metadata of {}",
            info.name
        );
    }
    let keys: Vec<String> = indexes.iter().map(|&i| spec::key(i)).collect();
    for chunk in keys.chunks(100) {
        let entries = ns.get_many(chunk).await.expect("no corrupt record");
        for (key, entry) in chunk.iter().zip(entries) {
            let i = spec::index(key).unwrap();
            let entry = entry.unwrap_or_else(|| panic!("{key} listed but not readable"));
            assert!(entry.value == spec::value(i), "value of {key}");
            assert_eq!(entry.metadata, spec::metadata(i), "metadata of {key}");
            match entry.expiration {
                Some(at) => {
                    assert!(spec::has_ttl(i), "{key} has an expiration");
                    assert!(
                        at > now && at <= now + spec::TTL.as_secs() + 1,
                        "{key}: {at}"
                    );
                }
                None => assert!(!spec::has_ttl(i), "{key} lost its expiration"),
            }
        }
    }
    highest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed:#x}");
    let mut random = XorShift(seed);

    let mut acked: Option<u64> = None;
    let mut next = 0;
    for round in 0..ROUNDS {
        let target = 1 + random.next(40);
        let mut writer = Writer::spawn(dir.path(), next);
        let mut last = None;
        for _ in 0..target {
            let index = writer.next_ack();
            assert_eq!(
                index,
                last.map_or(next, |l: u64| l + 1),
                "acks are in order"
            );
            last = Some(index);
        }
        // Sometimes kill right after an ack, sometimes mid-write.
        if random.next(2) == 0 {
            std::thread::sleep(Duration::from_micros(random.next(3000)));
        }
        for index in writer.kill() {
            assert_eq!(Some(index), last.map(|l| l + 1), "late acks are in order");
            last = Some(index);
        }
        acked = last.or(acked);

        let highest = verify(dir.path(), acked).await;
        // The next round continues after everything present, acknowledged or not.
        next = highest.map_or(0, |h| h + 1);
        eprintln!(
            "round {round}: {target} acks awaited, acknowledged up to {acked:?}, present up to {highest:?}"
        );
    }
    assert!(acked.is_some_and(|a| a >= ROUNDS), "every round wrote");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the crash test took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_open_in_another_process_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = Writer::spawn(dir.path(), 0);
    let _ = writer.next_ack(); // the writer has the store open

    match FileBackend::open(dir.path()) {
        Err(KvError::StoreLocked { path }) => assert_eq!(Path::new(&path), dir.path()),
        other => panic!("expected StoreLocked, got {other:?}"),
    }
    let url = format!("file:{}", dir.path().display());
    assert!(matches!(
        kv_backends::open(&url).await,
        Err(KvError::StoreLocked { .. })
    ));
    // The writer is unaffected by the refused opens.
    let a = writer.next_ack();
    let b = writer.next_ack();
    assert_eq!(b, a + 1);

    let late = writer.kill();
    let acked = late.last().copied().unwrap_or(b);
    // Once the writer is gone the store opens, with everything it acknowledged.
    assert!(verify(dir.path(), Some(acked)).await.is_some());
}

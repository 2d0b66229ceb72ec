//! [`capture_logs`]: what `tracing` wrote while a piece of async work ran, as text.

use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// Runs `work` to completion on a fresh single-threaded tokio runtime, with a `tracing`
/// subscriber that writes plain text (no colours) into a buffer, filtered by `filter` (an
/// `EnvFilter` directive such as `kv_core=trace,tower_http=debug`). Returns the text and
/// what `work` returned.
///
/// One thread, so that tasks the work spawns (a test server's) log through the same
/// subscriber. `tracing` caches per-callsite interest across threads: captures with
/// different filters belong in separate test binaries, or run one after the other.
///
/// ```
/// let (logs, answer) = kv_core::testing::capture_logs("info", async {
///     tracing::info!(user = "ada", "signed in");
///     tracing::debug!("filtered out");
///     42
/// });
/// assert_eq!(answer, 42);
/// assert!(logs.contains("signed in") && logs.contains("user=\"ada\""));
/// assert!(!logs.contains("filtered out"));
/// ```
pub fn capture_logs<F: Future>(filter: &str, work: F) -> (String, F::Output) {
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(buffer.clone())
        .with_ansi(false)
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded tokio runtime builds");
    let output = tracing::subscriber::with_default(subscriber, || runtime.block_on(work));
    drop(runtime);
    (buffer.text(), output)
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

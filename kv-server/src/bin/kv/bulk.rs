//! `kv bulk put|delete FILE.json`, in Cloudflare's bulk format, with a progress bar on a
//! terminal and a summary.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use kv_core::{BulkPut, Namespace, Store};
use kv_server::bulk_format::BulkWriteItem;

use crate::{existing_namespace, Failure, Outcome};

/// Items sent to the store per request.
const CHUNK: usize = 1000;

/// Bulk commands.
#[derive(Debug, Subcommand)]
pub enum BulkCommand {
    /// Write the items of a JSON array of `{key, value, base64?, expiration?, expiration_ttl?,
    /// metadata?}`.
    Put {
        /// The JSON file.
        file: PathBuf,
    },
    /// Delete the keys of a JSON array of strings.
    Delete {
        /// The JSON file.
        file: PathBuf,
    },
}

pub async fn run(store: &Store, namespace: &str, command: BulkCommand) -> Outcome {
    match command {
        BulkCommand::Put { file } => {
            let items: Vec<BulkWriteItem> = read_json(&file)?;
            let ns = store.namespace(namespace).await?;
            let progress = progress(items.len());
            let mut summary = Summary::default();
            let mut ready = Vec::with_capacity(CHUNK);
            for (index, item) in items.into_iter().enumerate() {
                match item.into_put(index) {
                    Ok(put) => ready.push(put),
                    Err(error) => summary.fail(error.to_string()),
                }
                if ready.len() == CHUNK {
                    put_chunk(&ns, std::mem::take(&mut ready), &mut summary).await;
                    progress.set_position(summary.done() as u64);
                }
            }
            put_chunk(&ns, ready, &mut summary).await;
            progress.finish_and_clear();
            summary.report("wrote")
        }
        BulkCommand::Delete { file } => {
            let keys: Vec<String> = read_json(&file)?;
            let ns = existing_namespace(store, namespace).await?;
            let progress = progress(keys.len());
            let mut summary = Summary::default();
            for chunk in keys.chunks(CHUNK) {
                match ns.delete_many(chunk).await {
                    Ok(()) => summary.succeeded += chunk.len(),
                    Err(_) => {
                        // Find the culprits one by one so the good keys still go.
                        for key in chunk {
                            match ns.delete(key).await {
                                Ok(()) => summary.succeeded += 1,
                                Err(error) => summary.fail(format!("key {key:?}: {error}")),
                            }
                        }
                    }
                }
                progress.set_position(summary.done() as u64);
            }
            progress.finish_and_clear();
            summary.report("deleted")
        }
    }
}

async fn put_chunk(ns: &Namespace, chunk: Vec<BulkPut>, summary: &mut Summary) {
    if chunk.is_empty() {
        return;
    }
    let count = chunk.len();
    if ns.put_many(chunk.clone()).await.is_ok() {
        summary.succeeded += count;
        return;
    }
    // One bad item rejects a whole batch: retry item by item to find it.
    for item in chunk {
        let key = item.key.clone();
        match ns.put_with(&item.key, item.value, item.options).await {
            Ok(_) => summary.succeeded += 1,
            Err(error) => summary.fail(format!("key {key:?}: {error}")),
        }
    }
}

#[derive(Debug, Default)]
struct Summary {
    succeeded: usize,
    failures: Vec<String>,
}

impl Summary {
    fn fail(&mut self, reason: String) {
        self.failures.push(reason);
    }

    fn done(&self) -> usize {
        self.succeeded + self.failures.len()
    }

    fn report(self, verb: &str) -> Outcome {
        for failure in &self.failures {
            eprintln!("failed: {failure}");
        }
        println!(
            "{verb} {} keys, {} failed",
            self.succeeded,
            self.failures.len()
        );
        if self.failures.is_empty() {
            Ok(())
        } else {
            Err(Failure::Error(anyhow::anyhow!(
                "{} of {} items failed",
                self.failures.len(),
                self.done()
            )))
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(file: &Path) -> Result<T, Failure> {
    let text = std::fs::read(file)
        .map_err(|e| Failure::Error(anyhow::anyhow!("cannot read {}: {e}", file.display())))?;
    serde_json::from_slice(&text).map_err(|e| {
        Failure::Error(anyhow::anyhow!(
            "{} is not in the bulk JSON format: {e}",
            file.display()
        ))
    })
}

/// A progress bar on a terminal; hidden otherwise.
fn progress(total: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} keys ({eta})") {
        bar.set_style(style);
    }
    bar
}

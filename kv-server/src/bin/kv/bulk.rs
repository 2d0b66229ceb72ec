//! `kv bulk put|delete FILE.json`, in Cloudflare's bulk format, with a progress bar on a
//! terminal and a summary; `kv bulk get`, with JSON out as `wrangler kv bulk get` prints it.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use clap::{ArgGroup, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kv_core::{BulkPut, Entry, Namespace};
use kv_server::bulk_format::BulkWriteItem;
use serde_json::Value;

use crate::confirm::Force;
use crate::{existing_namespace, namespace_or_create, open, Failure, Outcome};

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
    /// Delete the keys of a JSON array of strings (or of `{name}` objects, as `kv key list
    /// --json` prints them). Asks first on a terminal; needs --force anywhere else.
    Delete {
        /// The JSON file.
        file: PathBuf,
        #[command(flatten)]
        force: Force,
    },
    /// Print the values of many keys as one JSON object, key to value (`null` for a missing
    /// key), reading at most 100 keys per request.
    #[command(group(ArgGroup::new("keys").required(true).multiple(true).args(["file", "key"])))]
    Get {
        /// A JSON array of keys, as strings or `{name}` objects; `-` reads standard input.
        file: Option<PathBuf>,
        /// A key to get (repeatable), besides or instead of the file's.
        #[arg(long, short = 'k', value_name = "KEY")]
        key: Vec<String>,
        /// Give each present key `{value, metadata, expiration?}` instead of its value.
        #[arg(long)]
        metadata: bool,
        /// Print values base64-encoded (needed for values that are not UTF-8 text).
        #[arg(long)]
        base64: bool,
    },
}

impl BulkCommand {
    /// Refuses a destructive command that nobody can confirm, before the store is opened.
    pub fn check_confirmation(&self) -> Result<(), Failure> {
        match self {
            BulkCommand::Delete { force, .. } => force.check("kv bulk delete"),
            _ => Ok(()),
        }
    }
}

pub async fn run(store_url: &str, namespace: &str, command: BulkCommand) -> Outcome {
    match command {
        BulkCommand::Put { file } => {
            let items: Vec<BulkWriteItem> = read_json(&file)?;
            let store = open(store_url).await?;
            let ns = namespace_or_create(&store, namespace).await?;
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
        BulkCommand::Delete { file, force } => {
            let keys = key_list(read_json(&file)?, &file)?;
            let question = format!(
                "Delete the {} keys listed in {} from namespace {namespace:?}?",
                keys.len(),
                file.display()
            );
            if !force.confirm("kv bulk delete", &question)? {
                return Ok(());
            }
            let store = open(store_url).await?;
            let ns = existing_namespace(&store, namespace).await?;
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
        BulkCommand::Get {
            file,
            key,
            metadata,
            base64,
        } => {
            let mut keys = match &file {
                Some(file) => key_list(read_json(file)?, file)?,
                None => Vec::new(),
            };
            keys.extend(key);
            // Each key is read once however often it is named; the output is one object.
            let mut distinct: Vec<String> = Vec::with_capacity(keys.len());
            let mut seen = std::collections::HashSet::with_capacity(keys.len());
            for key in keys {
                if seen.insert(key.clone()) {
                    distinct.push(key);
                }
            }
            let store = open(store_url).await?;
            let ns = existing_namespace(&store, namespace).await?;
            let per_request = store.limits().max_bulk_get.max(1);
            let mut values = BTreeMap::new();
            for chunk in distinct.chunks(per_request) {
                let entries = ns.get_many(chunk).await?;
                for (key, entry) in chunk.iter().zip(entries) {
                    let shown = match entry {
                        None => Value::Null,
                        Some(entry) => shown_entry(key, entry, metadata, base64)?,
                    };
                    values.insert(key.clone(), shown);
                }
            }
            println!("{}", serde_json::to_string_pretty(&values)?);
            Ok(())
        }
    }
}

/// One present key of `kv bulk get`: its value as text (or base64), or with `--metadata`
/// Cloudflare's `{value, metadata, expiration?}` (metadata `null` when there is none).
fn shown_entry(key: &str, entry: Entry, metadata: bool, base64: bool) -> Result<Value, Failure> {
    let value = if base64 {
        Value::String(base64::engine::general_purpose::STANDARD.encode(&entry.value))
    } else {
        match std::str::from_utf8(&entry.value) {
            Ok(text) => Value::String(text.to_owned()),
            // Refused rather than mangled: a lossy decoding would print a value that is not
            // the stored one.
            Err(_) => {
                return Err(Failure::Error(anyhow::anyhow!(
                    "the value of key {key:?} is not UTF-8 text; pass --base64 to print it"
                )))
            }
        }
    };
    if !metadata {
        return Ok(value);
    }
    let mut shown = serde_json::json!({
        "value": value,
        "metadata": entry.metadata.unwrap_or(Value::Null),
    });
    if let Some(expiration) = entry.expiration {
        shown["expiration"] = expiration.into();
    }
    Ok(shown)
}

/// The keys of a JSON array of strings or `{name}` objects (what wrangler's `kv bulk get` and
/// `kv bulk delete` accept, and what `kv key list --json` prints).
fn key_list(items: Vec<Value>, file: &Path) -> Result<Vec<String>, Failure> {
    let mut keys = Vec::with_capacity(items.len());
    let mut bad = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Value::String(key) => keys.push(key),
            Value::Object(mut object) => match object.remove("name") {
                Some(Value::String(key)) => keys.push(key),
                _ => bad.push(index),
            },
            _ => bad.push(index),
        }
    }
    if bad.is_empty() {
        return Ok(keys);
    }
    let shown: Vec<String> = bad.iter().take(5).map(|i| i.to_string()).collect();
    let more = if bad.len() > 5 { ", ..." } else { "" };
    Err(Failure::Error(anyhow::anyhow!(
        "{}: expected an array of strings or of objects with a string \"name\"; \
         items {}{more} are neither",
        file_name(file),
        shown.join(", ")
    )))
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

/// Reads and parses a JSON file; `-` is standard input.
fn read_json<T: serde::de::DeserializeOwned>(file: &Path) -> Result<T, Failure> {
    let text = if file == Path::new("-") {
        let mut buffer = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buffer)
            .map_err(|e| Failure::Error(anyhow::anyhow!("cannot read standard input: {e}")))?;
        buffer
    } else {
        std::fs::read(file)
            .map_err(|e| Failure::Error(anyhow::anyhow!("cannot read {}: {e}", file.display())))?
    };
    serde_json::from_slice(&text).map_err(|e| {
        Failure::Error(anyhow::anyhow!(
            "{} is not in the bulk JSON format: {e}",
            file_name(file)
        ))
    })
}

/// How a file argument is named in messages.
fn file_name(file: &Path) -> String {
    if file == Path::new("-") {
        "standard input".to_owned()
    } else {
        file.display().to_string()
    }
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

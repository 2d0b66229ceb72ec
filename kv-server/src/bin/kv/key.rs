//! `kv key put|get|delete|list`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use futures::TryStreamExt;
use kv_core::{DeleteOutcome, PutOptions, Store, WriteMode};

use crate::{existing_namespace, namespace_or_create, Failure, Outcome};

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write a value (from VALUE, --path FILE, or standard input).
    Put {
        /// The key.
        key: String,
        /// The value; without it, --path or standard input is read.
        #[arg(conflicts_with = "path")]
        value: Option<String>,
        /// Read the value from this file.
        #[arg(long)]
        path: Option<PathBuf>,
        /// Expire this many seconds from now (at least 60).
        #[arg(long, conflicts_with = "expiration")]
        ttl: Option<u64>,
        /// Expire at this time, in seconds since the Unix epoch.
        #[arg(long)]
        expiration: Option<u64>,
        /// JSON metadata to store with the value.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Print a value, raw, to standard output.
    Get {
        /// The key.
        key: String,
    },
    /// Delete a key; deleting a key that does not exist succeeds, as on Workers KV.
    Delete {
        /// The key.
        key: String,
        /// Fail (exit 1) when the key did not exist.
        #[arg(long)]
        strict: bool,
    },
    /// List keys, one per line.
    List {
        /// Only keys starting with this prefix.
        #[arg(long)]
        prefix: Option<String>,
        /// Print a JSON array of `{name, expiration?, metadata?}` instead.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(store: &Store, namespace: &str, command: KeyCommand) -> Outcome {
    match command {
        KeyCommand::Put {
            key,
            value,
            path,
            ttl,
            expiration,
            metadata,
        } => {
            let bytes = match (value, path) {
                (Some(value), _) => value.into_bytes(),
                (None, Some(path)) => std::fs::read(&path).map_err(|e| {
                    Failure::Error(anyhow::anyhow!("cannot read {}: {e}", path.display()))
                })?,
                (None, None) => {
                    let mut buffer = Vec::new();
                    std::io::stdin().read_to_end(&mut buffer)?;
                    buffer
                }
            };
            let mut options = PutOptions::new();
            if let Some(ttl) = ttl {
                options = options.ttl(Duration::from_secs(ttl));
            }
            if let Some(expiration) = expiration {
                options = options.expiration(expiration);
            }
            if let Some(metadata) = metadata {
                let parsed = serde_json::from_str(&metadata)
                    .map_err(|e| Failure::Usage(format!("--metadata is not valid JSON: {e}")))?;
                options = options.metadata(parsed);
            }
            let ns = namespace_or_create(store, namespace).await?;
            let _ = ns.put_with(&key, bytes, options).await?;
        }
        KeyCommand::Get { key } => {
            let ns = existing_namespace(store, namespace).await?;
            let value = ns
                .get(&key)
                .await?
                .ok_or_else(|| Failure::NotFound(format!("key {key:?} not found")))?;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&value)?;
            stdout.flush()?;
        }
        KeyCommand::Delete { key, strict } => {
            let ns = existing_namespace(store, namespace).await?;
            // One delete, whose outcome says whether there was an entry: no read before it.
            let outcome = ns.delete_with(&key, WriteMode::Overwrite).await?;
            if strict && outcome == (DeleteOutcome::Deleted { existed: false }) {
                return Err(Failure::NotFound(format!("key {key:?} not found")));
            }
        }
        KeyCommand::List { prefix, json } => {
            let ns = existing_namespace(store, namespace).await?;
            let keys: Vec<_> = ns
                .list_all(prefix.as_deref().unwrap_or(""))
                .try_collect()
                .await?;
            let mut stdout = std::io::stdout().lock();
            if json {
                let items: Vec<_> = keys
                    .iter()
                    .map(|key| {
                        let mut item = serde_json::json!({ "name": key.name });
                        if let Some(expiration) = key.expiration {
                            item["expiration"] = expiration.into();
                        }
                        if let Some(metadata) = &key.metadata {
                            item["metadata"] = metadata.clone();
                        }
                        item
                    })
                    .collect();
                writeln!(stdout, "{}", serde_json::to_string_pretty(&items)?)?;
            } else {
                for key in keys {
                    writeln!(stdout, "{}", key.name)?;
                }
            }
        }
    }
    Ok(())
}

//! A first look at the store contract on the embedded default store.
//!
//! Each run writes, reads, increments a counter with compare-and-swap, lists, bulk-reads and
//! leaves a key that expires after a minute; the next run reports which of those are gone.
//!
//! ```text
//! cargo run -p kv-examples --bin kv-quickstart               # file:./kv-data
//! cargo run -p kv-examples --bin kv-quickstart -- --store memory:
//! ```

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use futures::TryStreamExt;
use kv_core::{BulkPut, PutOptions, PutOutcome, WriteMode, DEFAULT_STORE_URL};

/// Writes, reads, lists and expires keys, printing what it did.
#[derive(Debug, Parser)]
struct Args {
    /// The store URL (`file:PATH`, `memory:`, ...).
    #[arg(long, env = "KV_STORE", default_value = DEFAULT_STORE_URL)]
    store: String,
    /// The namespace to work in.
    #[arg(long, default_value = "quickstart")]
    namespace: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = kv_examples::open_store(&args.store).await?;
    let ns = store.namespace(&args.namespace).await?;
    let now = store.clock().unix_secs();
    println!(
        "opened the {} store {} (namespace {:?})",
        store.kind(),
        kv_core::redact_store_url(&args.store),
        args.namespace
    );

    // A counter incremented with compare-and-swap: safe with several processes on one store.
    let runs = loop {
        let (runs, mode) = match ns.get_json_entry::<u64>("runs").await? {
            Some((runs, entry)) => (runs, WriteMode::OnlyIfVersion(entry.version)),
            None => (0, WriteMode::OnlyIfAbsent),
        };
        let options = PutOptions::new().mode(mode);
        if let PutOutcome::Written(version) = ns.put_json_with("runs", &(runs + 1), options).await?
        {
            println!("increment runs -> {} (version {version})", runs + 1);
            break runs + 1;
        }
        println!("increment runs: another writer won the race, retrying");
    };

    let greeting = format!("hello from run {runs}");
    let version = ns.put_text("greeting", &greeting).await?;
    println!("put greeting = {greeting:?} (version {version})");
    let read = ns.get_text("greeting").await?;
    println!("get greeting -> {read:?}");

    // Keys with a TTL: invisible the moment they expire, whatever is still on disk.
    let alive_before: Vec<String> = ns
        .list_all("ephemeral:")
        .map_ok(|key| {
            format!(
                "{} (expires {})",
                key.name,
                key.expiration.unwrap_or_default()
            )
        })
        .try_collect()
        .await?;
    let key = format!("ephemeral:{now}");
    let options = PutOptions::new()
        .ttl(Duration::from_secs(60))
        .metadata(serde_json::json!({"run": runs}));
    let _ = ns.put_with(&key, "short-lived", options).await?;
    let entry = ns.get_entry(&key).await?.context("the key just written")?;
    println!(
        "put {key} with a 60 s TTL: expires at unix time {} with metadata {}",
        entry.expiration.unwrap_or_default(),
        entry.metadata.unwrap_or_default()
    );
    println!(
        "at unix time {now}, {} ephemeral keys of the {} earlier runs are still alive: {:?}",
        alive_before.len(),
        runs - 1,
        alive_before
    );

    // Bulk writes and reads.
    let items: Vec<BulkPut> = (0..100)
        .map(|i| BulkPut::new(format!("item:{i:03}"), format!("value {i} of run {runs}")))
        .collect();
    ns.put_many(items).await?;
    let picked = ns
        .get_many(&["item:007", "item:042", "item:missing"])
        .await?;
    for (key, entry) in ["item:007", "item:042", "item:missing"].iter().zip(&picked) {
        let value = entry
            .as_ref()
            .map(|e| String::from_utf8_lossy(&e.value).into_owned());
        println!("bulk get {key} -> {value:?}");
    }

    // Listing: pages in key order with a cursor.
    let page = ns
        .list(&kv_core::ListOptions::new().prefix("item:").limit(5))
        .await?;
    let names: Vec<&str> = page.keys.iter().map(|k| k.name.as_str()).collect();
    println!(
        "list prefix \"item:\" limit 5 -> {names:?} (complete: {})",
        page.list_complete
    );
    let total = ns.list_all("").try_collect::<Vec<_>>().await?.len();
    println!("namespace {:?} holds {total} live keys", args.namespace);
    Ok(())
}

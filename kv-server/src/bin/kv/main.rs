//! `kv`: serve a store over the REST API, or read and write any store from the shell.
//!
//! ```text
//! kv serve --listen 127.0.0.1:8787 --store file:./kv-data [--token T] [--no-console] [--header-read-timeout SECS] [--body-read-timeout SECS]
//! kv namespace create|list|rename ... | kv namespace delete NS [--force]
//! kv key put KEY [VALUE | --path FILE | <stdin] [--ttl S] [--expiration UNIX] [--metadata JSON]
//! kv key get KEY | kv key delete KEY [--strict] | kv key list [--prefix P] [--json]
//! kv bulk put FILE.json | kv bulk delete FILE.json [--force]
//! kv bulk get [FILE.json | -] [--key KEY]... [--metadata] [--base64]
//! kv flags import FILE | kv flags export | kv flags list [--json]
//! kv flags eval KEY [--file FILE] [--context JSON] [--type T] [--default JSON]
//! kv compact                      (a file store that no process has open)
//! kv proxy --listen ADDR --upstream URL --store URL [--purge-token T] [--default-ttl SECS] [--upstream-timeout SECS]
//! ```
//!
//! Every client command takes `--store URL` (default `./kv-data`, or `KV_STORE`) and
//! `--namespace TITLE_OR_ID` (default `default`). Exit codes: 0 success, 1 not found, 2 usage,
//! 3 any other error (with one line on stderr).
//!
//! Commands that delete many things (`namespace delete`, `bulk delete`) ask for confirmation
//! when standard input is a terminal, and otherwise refuse (exit 2) unless given `--force`
//! (aliases `-f`, `-y`, `--skip-confirmation`: wrangler spells it `--force`/`-f` on
//! `kv bulk delete` and `--skip-confirmation`/`-y` on `kv namespace delete`).
//!
//! The namespace argument is resolved with as few requests as the store allows: an argument
//! shaped like an id (32 hex digits) is opened directly, without listing namespaces; anything
//! else, or an id-shaped title, costs one listing.

mod bulk;
mod confirm;
mod flags;
mod key;
mod namespace;
mod proxy;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kv_core::{redact_store_url, KvError, Namespace, Store};

/// Serve a key-value store over the Workers KV REST API, or use one from the shell.
#[derive(Debug, Parser)]
#[command(name = "kv", version, about)]
struct Cli {
    /// The store to use: `file:PATH` or a path, `memory:`, `http://HOST:PORT`, ...
    #[arg(long, global = true, env = "KV_STORE", default_value = "./kv-data")]
    store: String,
    /// The namespace, by title or id.
    #[arg(long, short = 'n', global = true, default_value = "default")]
    namespace: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the store over the REST API until SIGINT or SIGTERM.
    Serve(serve::ServeArgs),
    /// A caching reverse proxy in front of an upstream, its cache in the store.
    Proxy(proxy::ProxyArgs),
    /// Create, list, rename and delete namespaces.
    #[command(subcommand)]
    Namespace(namespace::NamespaceCommand),
    /// Put, get, delete and list keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Write or delete many keys from a JSON file in Cloudflare's bulk format.
    #[command(subcommand)]
    Bulk(bulk::BulkCommand),
    /// Import, export, list and evaluate feature flags (flagd flag-definition documents).
    #[command(subcommand)]
    Flags(flags::FlagsCommand),
    /// Give a file store's free space (of deleted and expired entries) back to the file
    /// system; the store must not be open elsewhere.
    Compact,
}

/// How a command failed, which decides the exit code.
#[derive(Debug)]
enum Failure {
    /// Exit 1: the key or namespace does not exist.
    NotFound(String),
    /// Exit 2: the command line is wrong in a way clap could not see.
    Usage(String),
    /// Exit 3: anything else.
    Error(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::Error(error.into())
    }
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kv: cannot start the async runtime: {error}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::NotFound(message)) => {
            eprintln!("kv: {message}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("kv: {message}");
            ExitCode::from(2)
        }
        // A namespace that vanished between its lookup and its use is still "not found".
        Err(Failure::Error(error)) if is_not_found(&error) => {
            eprintln!("kv: {}", one_line(&error));
            ExitCode::from(1)
        }
        Err(Failure::Error(error)) => {
            eprintln!("kv: {}", one_line(&error));
            ExitCode::from(3)
        }
    }
}

async fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.store, args).await,
        Command::Proxy(args) => proxy::run(&cli.store, args).await,
        Command::Namespace(command) => {
            // Refused before the store is opened: a script without --force changes nothing.
            command.check_confirmation()?;
            let store = open(&cli.store).await?;
            namespace::run(&store, command).await
        }
        Command::Key(command) => {
            let store = open(&cli.store).await?;
            key::run(&store, &cli.namespace, command).await
        }
        Command::Bulk(command) => {
            command.check_confirmation()?;
            bulk::run(&cli.store, &cli.namespace, command).await
        }
        Command::Flags(command) => flags::run(&cli.store, &cli.namespace, command).await,
        Command::Compact => compact(&cli.store).await,
    }
}

/// `kv compact`: only file stores keep freed space in their file.
async fn compact(url: &str) -> Outcome {
    let path = match url.parse::<kv_core::StoreUrl>() {
        Ok(kv_core::StoreUrl::File { path }) => path,
        Ok(other) => {
            return Err(Failure::Usage(format!(
                "`kv compact` works on file stores; {} is a {} store",
                other.redacted(),
                other.backend()
            )))
        }
        Err(error) => return Err(Failure::Usage(error.to_string())),
    };
    let compaction = tokio::task::spawn_blocking(move || kv_backends::file::compact(&path))
        .await
        .map_err(anyhow::Error::new)??;
    println!(
        "compacted: {} -> {} bytes",
        compaction.bytes_before, compaction.bytes_after
    );
    Ok(())
}

async fn open(url: &str) -> Result<Store, Failure> {
    kv_backends::open(url).await.map_err(|error| match error {
        KvError::InvalidStoreUrl { .. } => Failure::Usage(error.to_string()),
        other => Failure::Error(
            anyhow::Error::new(other).context(format!("opening {}", redact_store_url(url))),
        ),
    })
}

/// Whether an argument has the shape of a namespace id (Cloudflare's: 32 hex digits), so that
/// opening it by id is worth a try before listing every namespace.
fn looks_like_id(title_or_id: &str) -> bool {
    title_or_id.len() == 32
        && title_or_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Opens the namespace with this id, or else this title; `None` when there is neither.
///
/// An id-shaped argument is opened directly (one request on an HTTP store), and the listing is
/// read only when that finds nothing; any other argument costs exactly one listing. An id wins
/// over a title, as in [`Store::find_namespace`].
async fn resolve_namespace(store: &Store, title_or_id: &str) -> Result<Option<Namespace>, Failure> {
    // A name no store accepts is the command line's fault, said before any request.
    kv_core::check_namespace_name(title_or_id).map_err(|e| Failure::Usage(e.to_string()))?;
    let id_shaped = looks_like_id(title_or_id);
    if id_shaped {
        match store.namespace_by_id(title_or_id).await {
            Ok(namespace) => return Ok(Some(namespace)),
            // Perhaps a title that happens to look like an id.
            Err(KvError::NamespaceNotFound { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    let all = store.list_namespaces().await?;
    let by_id = || all.iter().find(|ns| !id_shaped && ns.id == title_or_id);
    let found = by_id().or_else(|| all.iter().find(|ns| ns.title == title_or_id));
    match found {
        Some(info) => Ok(Some(store.namespace_by_id(&info.id).await?)),
        None => Ok(None),
    }
}

/// The namespace for a command that reads or deletes: it must exist.
async fn existing_namespace(store: &Store, title_or_id: &str) -> Result<Namespace, Failure> {
    resolve_namespace(store, title_or_id)
        .await?
        .ok_or_else(|| namespace_not_found(title_or_id))
}

/// The namespace for a command that writes: created, with this title, when it does not exist.
async fn namespace_or_create(store: &Store, title_or_id: &str) -> Result<Namespace, Failure> {
    if let Some(namespace) = resolve_namespace(store, title_or_id).await? {
        return Ok(namespace);
    }
    match store.create_namespace(title_or_id).await {
        Ok(info) => Ok(store.namespace_by_id(&info.id).await?),
        // Another process created it since the lookup: use theirs.
        Err(KvError::NamespaceExists { .. }) => existing_namespace(store, title_or_id).await,
        Err(other) => Err(other.into()),
    }
}

fn namespace_not_found(title_or_id: &str) -> Failure {
    Failure::NotFound(format!("namespace {title_or_id:?} not found"))
}

/// Whether an error is the store saying a namespace does not exist.
fn is_not_found(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref(),
            Some(KvError::NamespaceNotFound { .. })
        )
    })
}

/// An error and its causes on one line, each said once: a cause whose text its parent already
/// quotes (as many `Display`s do) is not repeated.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

//! `kv`: serve a store over the REST API, or read and write any store from the shell.
//!
//! ```text
//! kv serve --listen 127.0.0.1:8787 --store file:./kv-data [--token T] [--header-read-timeout SECS] [--body-read-timeout SECS]
//! kv namespace create|list|delete|rename ...
//! kv key put KEY [VALUE | --path FILE | <stdin] [--ttl S] [--expiration UNIX] [--metadata JSON]
//! kv key get KEY | kv key delete KEY | kv key list [--prefix P] [--json]
//! kv bulk put FILE.json | kv bulk delete FILE.json
//! kv compact                      (a file store that no process has open)
//! ```
//!
//! Every client command takes `--store URL` (default `./kv-data`, or `KV_STORE`) and
//! `--namespace TITLE_OR_ID` (default `default`). Exit codes: 0 success, 1 not found, 2 usage,
//! 3 any other error (with one line on stderr).

mod bulk;
mod key;
mod namespace;
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
    /// Create, list, rename and delete namespaces.
    #[command(subcommand)]
    Namespace(namespace::NamespaceCommand),
    /// Put, get, delete and list keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Write or delete many keys from a JSON file in Cloudflare's bulk format.
    #[command(subcommand)]
    Bulk(bulk::BulkCommand),
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
        Err(Failure::Error(error)) => {
            eprintln!("kv: {}", one_line(&error));
            ExitCode::from(3)
        }
    }
}

async fn run(cli: Cli) -> Outcome {
    match cli.command {
        Command::Serve(args) => serve::run(&cli.store, args).await,
        Command::Namespace(command) => {
            let store = open(&cli.store).await?;
            namespace::run(&store, command).await
        }
        Command::Key(command) => {
            let store = open(&cli.store).await?;
            key::run(&store, &cli.namespace, command).await
        }
        Command::Bulk(command) => {
            let store = open(&cli.store).await?;
            bulk::run(&store, &cli.namespace, command).await
        }
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

/// The namespace for a command that reads or deletes: it must exist.
async fn existing_namespace(store: &Store, title_or_id: &str) -> Result<Namespace, Failure> {
    match store.find_namespace(title_or_id).await? {
        Some(info) => Ok(store.namespace_by_id(&info.id).await?),
        None => Err(Failure::NotFound(format!(
            "namespace {title_or_id:?} not found"
        ))),
    }
}

/// An error and its causes on one line.
fn one_line(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(|cause| cause.to_string())
        .collect::<Vec<_>>()
        .join(": ")
        .replace('\n', " ")
}

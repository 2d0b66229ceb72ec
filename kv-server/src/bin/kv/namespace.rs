//! `kv namespace create|list|rename|delete`.

use clap::Subcommand;
use kv_core::{KvError, Store};

use crate::{Failure, Outcome};

/// Namespace commands.
#[derive(Debug, Subcommand)]
pub enum NamespaceCommand {
    /// Create a namespace; prints its id.
    Create {
        /// The new namespace's title.
        title: String,
    },
    /// List namespaces, one `ID<TAB>TITLE` per line.
    List {
        /// Print a JSON array of `{id, title}` instead.
        #[arg(long)]
        json: bool,
    },
    /// Give a namespace a new title.
    Rename {
        /// The namespace, by title or id.
        namespace: String,
        /// Its new title.
        title: String,
    },
    /// Delete a namespace and everything in it.
    Delete {
        /// The namespace, by title or id.
        namespace: String,
    },
}

pub async fn run(store: &Store, command: NamespaceCommand) -> Outcome {
    match command {
        NamespaceCommand::Create { title } => {
            let info = store.create_namespace(&title).await?;
            println!("{}", info.id);
        }
        NamespaceCommand::List { json } => {
            let all = store.list_namespaces().await?;
            if json {
                let items: Vec<_> = all
                    .iter()
                    .map(|ns| serde_json::json!({"id": ns.id, "title": ns.title}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else {
                for ns in all {
                    println!("{}\t{}", ns.id, ns.title);
                }
            }
        }
        NamespaceCommand::Rename { namespace, title } => {
            match store.rename_namespace(&namespace, &title).await {
                Err(KvError::NamespaceNotFound { .. }) => {
                    return Err(Failure::NotFound(format!(
                        "namespace {namespace:?} not found"
                    )))
                }
                other => other?,
            }
        }
        NamespaceCommand::Delete { namespace } => {
            if !store.delete_namespace(&namespace).await? {
                return Err(Failure::NotFound(format!(
                    "namespace {namespace:?} not found"
                )));
            }
        }
    }
    Ok(())
}

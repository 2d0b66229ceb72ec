//! `kv namespace create|list|rename|delete`.

use clap::Subcommand;
use kv_core::{KvError, Store};

use crate::confirm::Force;
use crate::{namespace_not_found, Failure, Outcome};

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
    /// Delete a namespace and everything in it (asks first on a terminal; needs --force
    /// anywhere else).
    Delete {
        /// The namespace, by title or id.
        namespace: String,
        #[command(flatten)]
        force: Force,
    },
}

impl NamespaceCommand {
    /// Refuses a destructive command that nobody can confirm, before the store is opened.
    pub fn check_confirmation(&self) -> Result<(), Failure> {
        match self {
            NamespaceCommand::Delete { force, .. } => force.check("kv namespace delete"),
            _ => Ok(()),
        }
    }
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
                    return Err(namespace_not_found(&namespace))
                }
                other => other?,
            }
        }
        NamespaceCommand::Delete { namespace, force } => {
            let mut target = namespace.clone();
            if !force.force {
                // Someone is at the terminal: show them exactly which namespace goes. This
                // costs a listing more than --force, at a human's pace.
                let info = store
                    .find_namespace(&namespace)
                    .await?
                    .ok_or_else(|| namespace_not_found(&namespace))?;
                let question = format!(
                    "Delete namespace {:?} (id {}) and every key in it?",
                    info.title, info.id
                );
                if !force.confirm("kv namespace delete", &question)? {
                    return Ok(());
                }
                target = info.id;
            }
            if !store.delete_namespace(&target).await? {
                return Err(namespace_not_found(&namespace));
            }
        }
    }
    Ok(())
}

//! `kv flags`: import, export, list and evaluate feature flags (flagd flag-definition
//! documents) in a namespace, or evaluate a document file without any store.

use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use kv_core::Store;
use kv_middleware::flags::{
    EvaluationContext, EvaluationDetails, FlagDocument, FlagSnapshot, FlagStore, FlagType,
    FlagsError,
};
use serde_json::{json, Map, Value};

use crate::{Failure, Outcome};

/// `kv flags ...`.
#[derive(Debug, Subcommand)]
pub enum FlagsCommand {
    /// Write every flag of a flagd document (`{"flags": {...}}`) into the namespace (created if
    /// missing). Every flag is validated first: one invalid flag writes nothing.
    Import {
        /// The flagd flag-definition document (JSON); `-` reads standard input.
        file: PathBuf,
    },
    /// Print the namespace's flags as one flagd document.
    Export,
    /// List the namespace's flags: key, state, default variant and variants.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate one flag and print one JSON object: `{"key", "value", "variant", "reason",
    /// "errorCode", "errorMessage", "flagMetadata"}` (absent fields omitted). Exits 0 whenever
    /// an evaluation was made, errors included.
    Eval(EvalArgs),
}

/// Options of `kv flags eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The flag's key.
    key: String,
    /// Evaluate the flags of this flagd document instead of a store's namespace.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// The evaluation context: a JSON object (`targetingKey` inside it is the targeting key).
    #[arg(long, value_name = "JSON")]
    context: Option<String>,
    /// The type the caller expects; a variant of another type answers `TYPE_MISMATCH`.
    #[arg(long = "type", value_enum, value_name = "TYPE")]
    value_type: Option<ValueType>,
    /// The caller's default (JSON), answered when the flag gives no value (disabled, unknown,
    /// an error).
    #[arg(long, value_name = "JSON")]
    default: Option<String>,
}

/// The flag types of OpenFeature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValueType {
    /// `true` or `false`.
    Boolean,
    /// A JSON string.
    String,
    /// A whole number (64 bits).
    Integer,
    /// Any number.
    Float,
    /// A JSON object or array.
    Object,
}

impl ValueType {
    fn flag_type(self) -> FlagType {
        match self {
            ValueType::Boolean => FlagType::Boolean,
            ValueType::String => FlagType::String,
            ValueType::Integer => FlagType::Integer,
            ValueType::Float => FlagType::Float,
            ValueType::Object => FlagType::Object,
        }
    }

    /// Whether `value` (the caller's default) is of this type.
    fn accepts(self, value: &Value) -> bool {
        match self {
            ValueType::Boolean => value.is_boolean(),
            ValueType::String => value.is_string(),
            ValueType::Integer => value.is_i64() || value.is_u64(),
            ValueType::Float => value.is_number(),
            ValueType::Object => value.is_object() || value.is_array(),
        }
    }
}

/// Runs a `kv flags` command against `--store` / `--namespace`.
pub async fn run(store_url: &str, namespace: &str, command: FlagsCommand) -> Outcome {
    match command {
        FlagsCommand::Eval(args) => eval(store_url, namespace, args).await,
        FlagsCommand::Import { file } => {
            let text = read_file(&file)?;
            // A file that is no flagd document is the command line's fault: nothing is opened.
            let document = FlagDocument::parse(&text)
                .map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?;
            let store = crate::open(store_url).await?;
            let namespace = crate::namespace_or_create(&store, namespace).await?;
            let flags = FlagStore::builder(namespace).with_manual_refresh().build();
            // The segments the flags may name come from the snapshot; a namespace whose present
            // flags do not validate does not stop an import that may be fixing them.
            let _ = flags.refresh().await;
            match flags.import_document(&document).await {
                Ok(count) => {
                    println!("imported {count} flag(s)");
                    Ok(())
                }
                Err(FlagsError::Invalid(errors)) => {
                    for error in &errors {
                        eprintln!("kv: invalid {error}");
                    }
                    Err(Failure::Error(anyhow::anyhow!(
                        "{} error(s) in {}; nothing was imported",
                        errors.len(),
                        file.display()
                    )))
                }
                Err(other) => Err(flags_failure(other)),
            }
        }
        FlagsCommand::Export => {
            let flags = open_flags(store_url, namespace).await?;
            let document = flags.export_document().await.map_err(flags_failure)?;
            println!("{}", serde_json::to_string_pretty(&document)?);
            Ok(())
        }
        FlagsCommand::List { json } => {
            let flags = open_flags(store_url, namespace).await?;
            let document = flags.export_document().await.map_err(flags_failure)?;
            let invalid: Vec<String> = flags
                .validation_errors()
                .into_iter()
                .map(|e| e.key.clone())
                .collect();
            for (key, flag) in &document.flags {
                let state = flag["state"].as_str().unwrap_or("?");
                let default = flag["defaultVariant"].as_str().unwrap_or("");
                let variants: Vec<&str> = flag["variants"]
                    .as_object()
                    .map(|v| v.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let valid = !invalid.contains(key);
                if json {
                    let line = json!({
                        "key": key,
                        "state": state,
                        "defaultVariant": flag["defaultVariant"],
                        "variants": variants,
                        "valid": valid,
                    });
                    println!("{line}");
                } else {
                    let note = if valid { "" } else { "\tINVALID" };
                    println!("{key}\t{state}\t{default}\t{}{note}", variants.join(","));
                }
            }
            Ok(())
        }
    }
}

async fn eval(store_url: &str, namespace: &str, args: EvalArgs) -> Outcome {
    // Usage errors first, before any file or store is read.
    let context = match &args.context {
        None => EvaluationContext::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(object)) => {
                kv_server::ofrep::context_from_json(object).map_err(Failure::Usage)?
            }
            Ok(_) => return Err(Failure::Usage("--context must be a JSON object".to_owned())),
            Err(e) => return Err(Failure::Usage(format!("--context is not JSON: {e}"))),
        },
    };
    let default = match &args.default {
        None => None,
        Some(text) => Some(
            serde_json::from_str::<Value>(text)
                .map_err(|e| Failure::Usage(format!("--default is not JSON: {e}")))?,
        ),
    };
    if let (Some(kind), Some(default)) = (args.value_type, &default) {
        if !kind.accepts(default) {
            return Err(Failure::Usage(format!(
                "--default {default} is not a {} (--type)",
                kind.flag_type().as_str()
            )));
        }
    }
    let snapshot = match &args.file {
        Some(file) => {
            let text = read_file(file)?;
            match FlagSnapshot::from_document(&text) {
                Ok(snapshot) => snapshot,
                // No flag can be read from it: still an evaluation, that of a parse error.
                Err(error) => {
                    let details = EvaluationDetails {
                        flag_key: args.key.clone(),
                        value: None,
                        variant: None,
                        reason: kv_middleware::flags::Reason::Error,
                        error_code: Some(kv_middleware::flags::ErrorCode::ParseError),
                        error_message: Some(format!("{}: {error}", file.display())),
                        flag_metadata: Map::new(),
                    };
                    println!("{}", result_json(details, default));
                    return Ok(());
                }
            }
        }
        None => open_flags(store_url, namespace).await?.snapshot(),
    };
    let ty = args.value_type.map(ValueType::flag_type);
    let details = snapshot.details(&args.key, &context, ty);
    println!("{}", result_json(details, default));
    Ok(())
}

/// The one JSON object `kv flags eval` prints: `{"key", "value", "variant", "reason",
/// "errorCode", "errorMessage", "flagMetadata"}`, absent fields omitted; the value is the
/// caller's default when the flag gives none.
fn result_json(details: EvaluationDetails<Option<Value>>, default: Option<Value>) -> Value {
    let mut out = Map::new();
    out.insert("key".into(), json!(details.flag_key));
    if let Some(value) = details.value.or(default) {
        out.insert("value".into(), value);
    }
    if let Some(variant) = details.variant {
        out.insert("variant".into(), json!(variant));
    }
    out.insert("reason".into(), json!(details.reason.as_str()));
    if let Some(code) = details.error_code {
        out.insert("errorCode".into(), json!(code.as_str()));
    }
    if let Some(message) = details.error_message {
        out.insert("errorMessage".into(), json!(message));
    }
    if !details.flag_metadata.is_empty() {
        out.insert("flagMetadata".into(), Value::Object(details.flag_metadata));
    }
    Value::Object(out)
}

fn read_file(path: &Path) -> Result<String, Failure> {
    if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| Failure::Error(anyhow::anyhow!("reading standard input: {e}")))
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))
    }
}

/// The flags of an existing namespace, loaded; flags that do not validate answer
/// `PARSE_ERROR` and the others are served.
async fn open_flags(store_url: &str, namespace: &str) -> Result<FlagStore, Failure> {
    let store: Store = crate::open(store_url).await?;
    let namespace = crate::existing_namespace(&store, namespace).await?;
    let flags = FlagStore::builder(namespace).with_manual_refresh().build();
    if let Err(error) = flags.refresh().await {
        if !matches!(error, FlagsError::Invalid(_)) || !flags.is_ready() {
            return Err(flags_failure(error));
        }
    }
    Ok(flags)
}

fn flags_failure(error: FlagsError) -> Failure {
    Failure::Error(anyhow::Error::new(error))
}

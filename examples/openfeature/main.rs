//! `kv-openfeature`: application code written against the OpenFeature client, reading flags
//! from a tower-kv store through [`FlagStoreProvider`].
//!
//! ```text
//! cargo run -p kv-examples --bin kv-openfeature [-- --store file:./kv-data]
//! ```
//!
//! It imports a small flagd document into the `FLAGS` namespace (any store URL works, so the
//! same flags can be edited with `kv flags import` or served to other languages with
//! `kv serve --flags-namespace FLAGS`), then evaluates them for two users through the
//! OpenFeature client, printing value, variant and reason.

use clap::Parser;
use kv_middleware::flags::{FlagDocument, FlagStore};
use kv_middleware::openfeature::FlagStoreProvider;
use open_feature::{EvaluationContext, OpenFeature};

#[derive(Debug, Parser)]
struct Args {
    /// The store holding the flags.
    #[arg(long, env = "KV_STORE", default_value = "memory:")]
    store: String,
}

/// A flagd flag-definition document, as flagd itself would read it.
const FLAGS: &str = r##"{
  "$schema": "https://flagd.dev/schema/v0/flags.json",
  "flags": {
    "new-checkout": {
      "state": "ENABLED",
      "variants": {"on": true, "off": false},
      "defaultVariant": "off",
      "targeting": {"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on",
                          {"fractional": [["on", 20], ["off", 80]]}]},
      "metadata": {"owner": "payments"}
    },
    "banner-color": {
      "state": "ENABLED",
      "variants": {"red": "#c00", "blue": "#00c"},
      "defaultVariant": "red"
    }
  }
}"##;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store = kv_backends::open(&args.store).await?;
    let flags = FlagStore::builder(store.namespace("FLAGS").await?).build();
    flags.import_document(&FlagDocument::parse(FLAGS)?).await?;

    // From here on, only OpenFeature's API: the provider could be swapped for any other.
    let mut api = OpenFeature::singleton_mut().await;
    api.set_provider(FlagStoreProvider::new(flags)).await;
    let client = api.create_client();
    drop(api);

    for (user, email) in [
        ("user-1", "ana@example.com"),
        ("user-2", "bo@elsewhere.org"),
    ] {
        let context = EvaluationContext::default()
            .with_targeting_key(user)
            .with_custom_field("email", email);
        let checkout = client
            .get_bool_details("new-checkout", Some(&context), None)
            .await;
        match checkout {
            Ok(details) => println!(
                "{user}: new-checkout = {} (variant {:?}, reason {:?})",
                details.value, details.variant, details.reason
            ),
            Err(error) => println!("{user}: new-checkout = false (default: {error:?})"),
        }
        let color = client
            .get_string_value("banner-color", Some(&context), None)
            .await
            .unwrap_or_else(|_| "#000".to_owned());
        println!("{user}: banner-color = {color}");
    }
    Ok(())
}

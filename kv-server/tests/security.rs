//! Bearer tokens: compared in constant time (through `subtle`, see `src/auth.rs`), refused
//! whatever their length or prefix, and never printed by the `kv` tool. (The server's logs:
//! `log_redaction.rs`.)

mod support;

use kv_server::{tokens_match, ServerConfig};
use support::TestServer;

const TOKEN: &str = "tok-5f1c2a9e-very-secret-bearer-value";
const WRONG: &str = "tok-5f1c2a9e-very-secret-bearer-valuX";

#[test]
fn the_token_comparison_rejects_every_near_miss() {
    let token = TOKEN.as_bytes();
    assert!(tokens_match(token, token));
    assert!(tokens_match(b"", b""));

    let mut near_misses: Vec<Vec<u8>> = vec![
        Vec::new(),
        token[..1].to_vec(),
        token[..token.len() - 1].to_vec(),
        [token, b"x"].concat(),
        [token, token].concat(),
        [b"x", token].concat(),
        [token, b"\0"].concat(),
        [token, b" "].concat(),
        TOKEN.to_uppercase().into_bytes(),
        WRONG.as_bytes().to_vec(),
    ];
    // Every prefix, and every one-bit change at every position.
    near_misses.extend((0..token.len()).map(|n| token[..n].to_vec()));
    for i in 0..token.len() {
        for bit in 0..8 {
            let mut flipped = token.to_vec();
            flipped[i] ^= 1 << bit;
            near_misses.push(flipped);
        }
    }
    for wrong in &near_misses {
        assert!(
            !tokens_match(wrong, token),
            "{:?} matched",
            String::from_utf8_lossy(wrong)
        );
        assert!(!tokens_match(token, wrong), "not symmetric");
    }
}

#[test]
fn the_kv_tool_does_not_print_its_token() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(TestServer::start(ServerConfig::default().with_token(TOKEN)));
    let url = format!("http://{}", server.addr);
    let run = |token: &str, args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kv"))
            .args(["--store", &url])
            .args(args)
            .env("KV_TOKEN", token)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let put = run(TOKEN, &["key", "put", "k", "v"]);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let refused = run(WRONG, &["key", "get", "k"]);
    assert_eq!(refused.status.code(), Some(3));
    for output in [&put, &refused] {
        let all = [&output.stdout[..], &output.stderr[..]].concat();
        let text = String::from_utf8_lossy(&all);
        assert!(
            !text.contains("5f1c2a9e"),
            "the tool printed a token: {text}"
        );
    }
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("401") || stderr.contains("uthentication"),
        "{stderr}"
    );
    runtime.block_on(server.stop());
}

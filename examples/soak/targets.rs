//! What the soak clients do to each target, and which answers count as expected.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kv_core::{ListOptions, Namespace};
use tokio::sync::RwLock;

use crate::report::TargetRecorder;

/// The answer to one request.
pub struct Outcome {
    /// The operation, for the report.
    pub op: &'static str,
    /// `None` when the answer was one the route promises; otherwise what went wrong.
    pub unexpected: Option<String>,
}

impl Outcome {
    fn expected(op: &'static str) -> Outcome {
        Outcome {
            op,
            unexpected: None,
        }
    }
}

type OutcomeFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// A load target: one request per call, chosen from `dice`.
pub trait Target: Clone + Send + Sync + 'static {
    /// Sends one request.
    fn one(&self, dice: u64) -> OutcomeFuture<'_>;
}

/// Paces one client at `interval` per request until `stop`, recording every answer.
pub async fn drive<T: Target>(
    target: T,
    recorder: TargetRecorder,
    stop: Arc<AtomicBool>,
    interval: Duration,
    seed: u64,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while !stop.load(Ordering::SeqCst) {
        ticks.tick().await;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let started = Instant::now();
        let outcome = target.one(rng).await;
        recorder.record(outcome, started.elapsed());
    }
}

/// The kv-server, through the HTTP backend: gets, puts, lists and deletes over 1 000 keys.
#[derive(Clone)]
pub struct KvServerTarget {
    namespace: Namespace,
    value: Arc<str>,
}

impl KvServerTarget {
    /// Opens the `SOAK` namespace of the kv-server at `url`.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let store = kv_backends::open(url).await?;
        Ok(KvServerTarget {
            namespace: store.namespace("SOAK").await?,
            value: "v".repeat(200).into(),
        })
    }
}

impl Target for KvServerTarget {
    fn one(&self, dice: u64) -> OutcomeFuture<'_> {
        Box::pin(async move {
            let key = format!("key-{:04}", (dice >> 8) % 1000);
            let (op, result) = match dice % 20 {
                0..=9 => ("get", self.namespace.get(&key).await.map(drop)),
                10..=14 => (
                    "put",
                    self.namespace.put_text(&key, &self.value).await.map(drop),
                ),
                15..=17 => {
                    let options = ListOptions::new()
                        .prefix(format!("key-{}", (dice >> 8) % 10))
                        .limit(50);
                    ("list", self.namespace.list(&options).await.map(drop))
                }
                _ => ("delete", self.namespace.delete(&key).await.map(drop)),
            };
            Outcome {
                op,
                unexpected: result.err().map(|e| format!("{op}: {e}")),
            }
        })
    }
}

/// The demo: 50 signed-in sessions and every route.
#[derive(Clone)]
pub struct DemoTarget {
    http: reqwest::Client,
    url: Arc<str>,
    /// The sessions' cookies (`session=...`). A re-login cycles the session ID, so it holds
    /// its slot exclusively: a request still carrying the old ID would rightly get a 401.
    cookies: Arc<Vec<RwLock<String>>>,
}

const SESSIONS: usize = 50;

impl DemoTarget {
    /// Signs in the 50 users.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?;
        let target = DemoTarget {
            http,
            url: url.into(),
            cookies: Arc::new((0..SESSIONS).map(|_| RwLock::new(String::new())).collect()),
        };
        for slot in 0..SESSIONS {
            let outcome = target.login(slot).await;
            anyhow::ensure!(outcome.unexpected.is_none(), "{:?}", outcome.unexpected);
        }
        Ok(target)
    }

    async fn login(&self, slot: usize) -> Outcome {
        let mut cookie = self.cookies[slot].write().await;
        let response = self
            .http
            .post(format!("{}/login", self.url))
            .header("cookie", cookie.as_str())
            .form(&[("user", format!("soak-{slot}"))])
            .send()
            .await;
        let set_cookie = match &response {
            Ok(r) if r.status() == 303 => r
                .headers()
                .get("set-cookie")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .map(str::to_owned),
            _ => None,
        };
        match set_cookie {
            Some(new) => {
                *cookie = new;
                Outcome::expected("login")
            }
            None => Outcome {
                op: "login",
                unexpected: Some(format!("login: {:?}", response.map(|r| r.status()))),
            },
        }
    }

    async fn check(
        &self,
        op: &'static str,
        request: reqwest::RequestBuilder,
        expected: &[u16],
    ) -> Outcome {
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the whole body, as a browser would.
                let body = response.bytes().await;
                match body {
                    Ok(_) if expected.contains(&status) => Outcome::expected(op),
                    Ok(_) => Outcome {
                        op,
                        unexpected: Some(format!("{op}: status {status}")),
                    },
                    Err(e) => Outcome {
                        op,
                        unexpected: Some(format!("{op}: body: {e}")),
                    },
                }
            }
            Err(e) => Outcome {
                op,
                unexpected: Some(format!("{op}: {e}")),
            },
        }
    }
}

impl Target for DemoTarget {
    fn one(&self, dice: u64) -> OutcomeFuture<'_> {
        Box::pin(async move {
            let slot = ((dice >> 8) % SESSIONS as u64) as usize;
            let url = |path: &str| format!("{}{path}", self.url);
            if dice % 50 == 0 {
                return self.login(slot).await;
            }
            let guard = self.cookies[slot].read().await;
            let cookie = guard.clone();
            match dice % 50 {
                1..=8 => {
                    let request = self.http.get(url("/")).header("cookie", cookie);
                    self.check("page", request, &[200]).await
                }
                9..=16 => {
                    let request = self.http.get(url("/me")).header("cookie", cookie);
                    self.check("me", request, &[200]).await
                }
                17..=22 => {
                    let request = self.http.post(url("/counter")).header("cookie", cookie);
                    self.check("counter", request, &[200]).await
                }
                23..=32 => {
                    // Rate limited (100/s for all clients of this IP): 429 is a promised answer.
                    self.check("ping", self.http.get(url("/api/ping")), &[200, 429])
                        .await
                }
                33..=40 => {
                    self.check("slow", self.http.get(url("/api/slow")), &[200])
                        .await
                }
                41..=45 => {
                    let request = self
                        .http
                        .get(url("/api/flags"))
                        .header("x-user-id", format!("user-{slot}"));
                    self.check("flags", request, &[200]).await
                }
                _ => {
                    self.check("config", self.http.get(url("/api/config")), &[200])
                        .await
                }
            }
        })
    }
}

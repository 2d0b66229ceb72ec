//! [`FaultyStore`]: a namespace store that fails, stalls or hangs when told to.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    Capabilities, DeleteOutcome, Entry, KvError, ListOptions, ListPage, Message, Namespace,
    NamespaceStore, NewEntry, PutOutcome, Result, WriteMode,
};

/// What an injected fault does to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call fails at once with [`KvError::Unavailable`], as a refused connection would.
    Error,
    /// The call waits this long (on tokio's timer), then runs normally: a slow store.
    Delay(Duration),
    /// The call never returns: a store that stopped answering (callers need a timeout).
    Hang,
    /// The call yields to the runtime once, then runs normally: a store whose calls suspend,
    /// as a remote store's do, so concurrent tasks interleave as they would over a network.
    Yield,
    /// The call runs against the wrapped store (a write lands), then its reply is lost: the
    /// caller gets [`KvError::Unavailable`], as when a connection drops after the server
    /// applied the request. The caller cannot tell this from [`Fault::Error`], which is the
    /// point: code that treats every error as "nothing happened" is wrong about this one.
    LostReply,
    /// The call runs against the wrapped store (a write lands), then never returns: the reply
    /// is lost and only the caller's timeout ends the call.
    LostReplyHang,
}

/// Which calls a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ops {
    /// `get`, `get_many` and `list`.
    Reads,
    /// `put`, `delete`, `put_many` and `delete_many`.
    Writes,
    /// Every call.
    All,
}

/// One kind of store call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Get,
    GetMany,
    List,
    Put,
    PutMany,
    Delete,
    DeleteMany,
}

impl Call {
    fn is_write(self) -> bool {
        matches!(
            self,
            Call::Put | Call::PutMany | Call::Delete | Call::DeleteMany
        )
    }
}

impl Ops {
    fn covers(self, write: bool) -> bool {
        match self {
            Ops::Reads => !write,
            Ops::Writes => write,
            Ops::All => true,
        }
    }
}

/// When a rule fires.
#[derive(Debug, Clone, Copy)]
enum Schedule {
    Always,
    /// The next this-many matching calls.
    Next(u64),
    /// Each matching call with this probability.
    Probability(f64),
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    ops: Ops,
    fault: Fault,
    schedule: Schedule,
}

#[derive(Debug)]
struct Plan {
    rules: Vec<Rule>,
    /// xorshift64* state: deterministic for a given seed.
    rng: u64,
    capabilities: Option<Capabilities>,
}

impl Plan {
    fn next_unit(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The fault for one call, if any rule fires; spends a `Next` rule's budget.
    fn pick(&mut self, write: bool) -> Option<Fault> {
        for i in 0..self.rules.len() {
            let rule = self.rules[i];
            if !rule.ops.covers(write) {
                continue;
            }
            let fires = match rule.schedule {
                Schedule::Always => true,
                Schedule::Next(0) => false,
                Schedule::Next(n) => {
                    self.rules[i].schedule = Schedule::Next(n - 1);
                    true
                }
                Schedule::Probability(p) => self.next_unit() < p,
            };
            if fires {
                return Some(rule.fault);
            }
        }
        None
    }
}

/// What a [`FaultyStore`] has seen: every call that reached it, faulted or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaultCounts {
    /// Read calls (`get`, `get_many`, `list`).
    pub reads: u64,
    /// Write calls (`put`, `delete`, `put_many`, `delete_many`).
    pub writes: u64,
    /// `get` calls.
    pub gets: u64,
    /// `get_many` calls.
    pub get_manys: u64,
    /// `list` calls.
    pub lists: u64,
    /// `put` calls.
    pub puts: u64,
    /// `put_many` calls.
    pub put_manys: u64,
    /// `delete` calls.
    pub deletes: u64,
    /// `delete_many` calls.
    pub delete_manys: u64,
    /// Calls that got a fault (any kind).
    pub injected: u64,
    /// Calls that failed with an injected error (including [`Fault::LostReply`]).
    pub errors: u64,
    /// Calls that ran against the wrapped store and then lost their reply
    /// ([`Fault::LostReply`] and [`Fault::LostReplyHang`]); for writes, each one landed.
    pub lost_replies: u64,
}

/// One counter per [`Call`], then injected faults and errors.
#[derive(Debug, Default)]
struct Counters {
    calls: [AtomicU64; 7],
    injected: AtomicU64,
    errors: AtomicU64,
    lost_replies: AtomicU64,
}

/// The remote control of a [`FaultyStore`]: cheap to clone, usable from any task.
///
/// Rules are checked in the order they were added; the first that fires decides the call.
#[derive(Clone)]
pub struct Faults {
    plan: Arc<Mutex<Plan>>,
    counters: Arc<Counters>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults")
            .field("rules", &self.plan().rules)
            .field("counts", &self.counts())
            .finish()
    }
}

impl Default for Faults {
    fn default() -> Self {
        Faults::seeded(DEFAULT_SEED)
    }
}

/// The seed of [`FaultyStore::wrap`] and [`Faults::default`].
const DEFAULT_SEED: u64 = 0x5EED;

impl Faults {
    /// A remote control with no rules, for [`FaultyStore::wrap_with`]: one handle can steer
    /// several namespaces (every namespace of a test's store, say).
    pub fn new() -> Self {
        Faults::default()
    }

    /// [`new`](Faults::new) with a chosen seed for the probabilistic rules.
    pub fn seeded(seed: u64) -> Self {
        Faults {
            plan: Arc::new(Mutex::new(Plan {
                rules: Vec::new(),
                // xorshift must not start at zero.
                rng: seed | 1,
                capabilities: None,
            })),
            counters: Arc::default(),
        }
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        // A panicking test thread must not hide the plan from the others.
        self.plan.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, ops: Ops, fault: Fault, schedule: Schedule) -> &Self {
        self.plan().rules.push(Rule {
            ops,
            fault,
            schedule,
        });
        self
    }

    /// Every matching call gets `fault` (until [`clear`](Faults::clear)).
    pub fn always(&self, ops: Ops, fault: Fault) -> &Self {
        self.add(ops, fault, Schedule::Always)
    }

    /// The next `n` matching calls get `fault`; later ones run normally.
    pub fn next(&self, ops: Ops, n: u64, fault: Fault) -> &Self {
        self.add(ops, fault, Schedule::Next(n))
    }

    /// Each matching call gets `fault` with probability `p` (0.0 to 1.0), drawn from the
    /// store's seeded generator.
    pub fn with_probability(&self, ops: Ops, p: f64, fault: Fault) -> &Self {
        self.add(ops, fault, Schedule::Probability(p.clamp(0.0, 1.0)))
    }

    /// Removes every rule: the store behaves again (calls already hanging stay hung).
    pub fn clear(&self) -> &Self {
        self.plan().rules.clear();
        self
    }

    /// Makes the store report `capabilities` instead of the wrapped store's (for example
    /// [`Capabilities::plain`] to stand for a store without compare-and-swap).
    pub fn report_capabilities(&self, capabilities: Capabilities) -> &Self {
        self.plan().capabilities = Some(capabilities);
        self
    }

    /// The calls seen and the faults injected so far.
    pub fn counts(&self) -> FaultCounts {
        let c = &self.counters;
        let calls = |call: Call| c.calls[call as usize].load(Ordering::Relaxed);
        let (gets, get_manys, lists) = (calls(Call::Get), calls(Call::GetMany), calls(Call::List));
        let (puts, put_manys) = (calls(Call::Put), calls(Call::PutMany));
        let (deletes, delete_manys) = (calls(Call::Delete), calls(Call::DeleteMany));
        FaultCounts {
            reads: gets + get_manys + lists,
            writes: puts + put_manys + deletes + delete_manys,
            gets,
            get_manys,
            lists,
            puts,
            put_manys,
            deletes,
            delete_manys,
            injected: c.injected.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            lost_replies: c.lost_replies.load(Ordering::Relaxed),
        }
    }

    fn injected_error(&self, message: &str) -> KvError {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        KvError::Unavailable {
            backend: "faulty",
            source: Box::new(Message(format!("injected fault: {message}"))),
        }
    }

    /// Decides one call's fault and applies what happens before the wrapped store runs; the
    /// returned [`After`] says what happens to its reply.
    async fn before(&self, call: Call) -> Result<After> {
        self.counters.calls[call as usize].fetch_add(1, Ordering::Relaxed);
        let fault = self.plan().pick(call.is_write());
        let Some(fault) = fault else {
            return Ok(After::Deliver);
        };
        self.counters.injected.fetch_add(1, Ordering::Relaxed);
        match fault {
            Fault::Error => Err(self.injected_error("connection refused")),
            Fault::Delay(delay) => {
                tokio::time::sleep(delay).await;
                Ok(After::Deliver)
            }
            Fault::Hang => std::future::pending().await,
            Fault::Yield => {
                tokio::task::yield_now().await;
                Ok(After::Deliver)
            }
            Fault::LostReply => Ok(After::Fail),
            Fault::LostReplyHang => Ok(After::Hang),
        }
    }

    /// Hands the wrapped store's reply to the caller, or loses it.
    async fn after<T>(&self, after: After, reply: Result<T>) -> Result<T> {
        if after == After::Deliver {
            return reply;
        }
        self.counters.lost_replies.fetch_add(1, Ordering::Relaxed);
        match after {
            After::Fail => Err(self.injected_error("connection reset after the request was sent")),
            _ => std::future::pending().await,
        }
    }
}

/// What happens to a call's reply once the wrapped store has run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// The caller gets the reply.
    Deliver,
    /// The reply is lost: the caller gets an error.
    Fail,
    /// The reply is lost: the call never returns.
    Hang,
}

/// A [`NamespaceStore`] that passes every call to the store it wraps, unless its [`Faults`] say
/// otherwise.
pub struct FaultyStore {
    inner: Arc<dyn NamespaceStore>,
    faults: Faults,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("inner", &self.inner.kind())
            .field("faults", &self.faults)
            .finish()
    }
}

impl FaultyStore {
    /// Wraps `inner`, steered by `faults`.
    pub fn new(inner: Arc<dyn NamespaceStore>, faults: &Faults) -> Self {
        FaultyStore {
            inner,
            faults: faults.clone(),
        }
    }

    /// A namespace handle over the same data as `namespace` (same id, limits and clock) whose
    /// calls go through a new `FaultyStore`, and the faults' remote control.
    pub fn wrap(namespace: &Namespace) -> (Namespace, Faults) {
        Self::wrap_seeded(namespace, DEFAULT_SEED)
    }

    /// [`wrap`](FaultyStore::wrap) with a chosen seed for the probabilistic rules.
    pub fn wrap_seeded(namespace: &Namespace, seed: u64) -> (Namespace, Faults) {
        let faults = Faults::seeded(seed);
        (Self::wrap_with(namespace, &faults), faults)
    }

    /// `namespace` seen through a `FaultyStore` steered by an existing `faults` handle.
    pub fn wrap_with(namespace: &Namespace, faults: &Faults) -> Namespace {
        Namespace::new(
            namespace.id(),
            Arc::new(Self::new(namespace.raw().clone(), faults)),
            namespace.limits().clone(),
            namespace.clock().clone(),
        )
    }
}

#[async_trait]
impl NamespaceStore for FaultyStore {
    fn kind(&self) -> &'static str {
        // Transparent: code that reports the backend keeps reporting the real one.
        self.inner.kind()
    }

    fn capabilities(&self) -> Capabilities {
        self.faults
            .plan()
            .capabilities
            .unwrap_or_else(|| self.inner.capabilities())
    }

    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        let after = self.faults.before(Call::Get).await?;
        let reply = self.inner.get(key).await;
        self.faults.after(after, reply).await
    }

    async fn put(&self, key: &str, entry: NewEntry, mode: WriteMode) -> Result<PutOutcome> {
        let after = self.faults.before(Call::Put).await?;
        let reply = self.inner.put(key, entry, mode).await;
        self.faults.after(after, reply).await
    }

    async fn delete(&self, key: &str, mode: WriteMode) -> Result<DeleteOutcome> {
        let after = self.faults.before(Call::Delete).await?;
        let reply = self.inner.delete(key, mode).await;
        self.faults.after(after, reply).await
    }

    async fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let after = self.faults.before(Call::List).await?;
        let reply = self.inner.list(options).await;
        self.faults.after(after, reply).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Entry>>> {
        let after = self.faults.before(Call::GetMany).await?;
        let reply = self.inner.get_many(keys).await;
        self.faults.after(after, reply).await
    }

    async fn put_many(&self, items: Vec<(String, NewEntry)>) -> Result<()> {
        let after = self.faults.before(Call::PutMany).await?;
        let reply = self.inner.put_many(items).await;
        self.faults.after(after, reply).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let after = self.faults.before(Call::DeleteMany).await?;
        let reply = self.inner.delete_many(keys).await;
        self.faults.after(after, reply).await
    }
}

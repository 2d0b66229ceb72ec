//! The programmatic limiter over real stores with a manual clock: exactness under concurrency
//! (memory and file; one limiter, and several limiters standing in for processes), the stored
//! form, round trips, expiry, multi-quota, approximate mode, errors and timeouts.
#![cfg(feature = "rate_limit")]

mod rate_limit_support;

use kv_core::testing::{Fault, Ops};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use kv_core::PutOptions;
use kv_middleware::rate_limit::{
    Quota, RateLimitConfigError, RateLimitError, RateLimiter, RateLimiterBuilder,
};
use rate_limit_support::{Fixture, START};

fn quota(text: &str) -> Quota {
    text.parse().unwrap()
}

/// Runs `total` concurrent checks of one key, spread over the limiters round-robin, and
/// returns how many were admitted.
async fn admitted_concurrently(limiters: &[RateLimiter], total: usize) -> usize {
    let checks = (0..total).map(|i| {
        let limiter = limiters[i % limiters.len()].clone();
        tokio::spawn(async move { limiter.check("ip:203.0.113.7", 1).await })
    });
    let results = join_all(checks).await;
    let mut admitted = 0;
    for result in results {
        let outcome = result.expect("task").expect("check");
        if outcome.is_allowed() {
            admitted += 1;
        }
    }
    admitted
}

async fn exactly_the_quota_under_concurrency(fx: Fixture) {
    let limiter = RateLimiter::new(fx.namespace.clone(), "api", quota("50/min")).unwrap();
    assert_eq!(
        admitted_concurrently(std::slice::from_ref(&limiter), 200).await,
        50
    );
    let stats = limiter.stats();
    assert_eq!((stats.allowed, stats.denied), (50, 150));
    assert_eq!(
        stats.conflicts, 0,
        "one process serializes one key's checks"
    );
    // And nothing more, however often it is asked, while no time passes.
    assert!(!limiter
        .check("ip:203.0.113.7", 1)
        .await
        .unwrap()
        .is_allowed());
}

/// Four limiters with their own locks and memories: four processes sharing one store. Only
/// compare-and-swap keeps them exact.
async fn exactly_the_quota_across_limiters(fx: Fixture) {
    // The four limiters' first writes meet at a gate, so they race for certain.
    let (namespace, races) = kv_core::testing::RaceGate::wrap(&fx.namespace, 4);
    let limiters: Vec<RateLimiter> = (0..4)
        .map(|_| {
            RateLimiter::builder(namespace.clone())
                .with_quota("api", quota("50/min"))
                .with_max_attempts(1000)
                .build()
                .unwrap()
        })
        .collect();
    assert_eq!(admitted_concurrently(&limiters, 200).await, 50);
    let allowed: u64 = limiters.iter().map(|l| l.stats().allowed).sum();
    assert_eq!(allowed, 50);
    let conflicts: u64 = limiters.iter().map(|l| l.stats().conflicts).sum();
    assert!(races.conflicts() >= 3, "the limiters collided");
    assert_eq!(conflicts, races.conflicts(), "each lost race counted once");
}

macro_rules! on_memory_and_file {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Fixture::memory().await).await;
                }
            )*
        }
        mod file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Fixture::file().await).await;
                }
            )*
        }
    };
}

on_memory_and_file!(
    exactly_the_quota_under_concurrency,
    exactly_the_quota_across_limiters,
    state_is_one_entry_per_quota_and_key,
    refills_with_the_clock,
    several_quotas_all_must_allow_and_a_denial_spends_nothing,
    reset_forgets_a_key,
);

async fn state_is_one_entry_per_quota_and_key(fx: Fixture) {
    let limiter = RateLimiter::new(fx.namespace.clone(), "api", quota("100/min")).unwrap();
    limiter.check("user:1", 1).await.unwrap();
    let entry = fx.namespace.get_entry("api:user:1").await.unwrap().unwrap();
    // TAT = now + 600 ms, in nanoseconds since the epoch.
    let tat = START * 1_000_000_000 + 600_000_000;
    assert_eq!(entry.value, tat.to_string().as_bytes());
    // Kept for as long as it matters, and at least the store's minimum of 60 s.
    assert_eq!(entry.expiration, Some(START + 60));

    // A state that matters for longer lives longer: 100 of 100 spent matters 60 s, plus the
    // second already begun.
    limiter.check("user:1", 99).await.unwrap();
    let entry = fx.namespace.get_entry("api:user:1").await.unwrap().unwrap();
    assert_eq!(entry.expiration, Some(START + 61));

    // Expired, it is gone, and the key has its full quota again.
    fx.clock.advance(Duration::from_secs(61));
    assert_eq!(fx.namespace.get_entry("api:user:1").await.unwrap(), None);
    let outcome = limiter.check("user:1", 1).await.unwrap();
    assert_eq!(outcome.remaining(), 99);
}

async fn refills_with_the_clock(fx: Fixture) {
    // 6 per minute: one unit every 10 s.
    let limiter = RateLimiter::new(fx.namespace.clone(), "slow", quota("6/min")).unwrap();
    for expected in (0..6).rev() {
        let outcome = limiter.check("k", 1).await.unwrap();
        assert!(outcome.is_allowed());
        assert_eq!(outcome.remaining(), expected);
    }
    let denied = limiter.check("k", 1).await.unwrap();
    assert!(!denied.is_allowed());
    assert_eq!(denied.retry_after(), Some(Duration::from_secs(10)));
    assert_eq!(denied.reset(), Duration::from_secs(60));
    fx.clock.advance(Duration::from_millis(9_999));
    assert!(!limiter.check("k", 1).await.unwrap().is_allowed());
    fx.clock.advance(Duration::from_millis(1));
    let outcome = limiter.check("k", 1).await.unwrap();
    assert!(outcome.is_allowed());
    assert_eq!(outcome.remaining(), 0);
    fx.clock.advance(Duration::from_secs(25));
    let outcome = limiter.check("k", 2).await.unwrap();
    assert!(outcome.is_allowed());
    assert_eq!(outcome.remaining(), 0);
    assert!(!limiter.check("k", 1).await.unwrap().is_allowed());
}

async fn several_quotas_all_must_allow_and_a_denial_spends_nothing(fx: Fixture) {
    let limiter = RateLimiter::builder(fx.namespace.clone())
        .with_quota("burst", quota("2/s"))
        .with_quota("hourly", quota("5/h"))
        .build()
        .unwrap();
    for _ in 0..2 {
        assert!(limiter.check("k", 1).await.unwrap().is_allowed());
    }
    // The burst quota is spent; the hourly one is not touched by the denial.
    let hourly_version = fx
        .namespace
        .get_entry("hourly:k")
        .await
        .unwrap()
        .unwrap()
        .version;
    let denied = limiter.check("k", 1).await.unwrap();
    assert!(!denied.is_allowed());
    let violated: Vec<&str> = denied.violated().map(|q| q.name()).collect();
    assert_eq!(violated, ["burst"]);
    assert_eq!(
        denied.quotas()[1].remaining(),
        3,
        "hourly reports what it has left"
    );
    let entry = fx.namespace.get_entry("hourly:k").await.unwrap().unwrap();
    assert_eq!(entry.version, hourly_version, "a denial writes nothing");

    fx.clock.advance(Duration::from_secs(1));
    assert!(limiter.check("k", 1).await.unwrap().is_allowed());
    assert!(limiter.check("k", 1).await.unwrap().is_allowed());
    fx.clock.advance(Duration::from_secs(1));
    assert!(limiter.check("k", 1).await.unwrap().is_allowed());
    // Now the hourly quota is the one spent: its next unit comes 720 s after the first.
    let denied = limiter.check("k", 1).await.unwrap();
    let violated: Vec<&str> = denied.violated().map(|q| q.name()).collect();
    assert_eq!(violated, ["hourly"]);
    assert_eq!(denied.retry_after(), Some(Duration::from_secs(718)));
    assert_eq!(
        denied.quotas()[0].remaining(),
        1,
        "burst reports what it has left"
    );
}

async fn reset_forgets_a_key(fx: Fixture) {
    let limiter = RateLimiter::new(fx.namespace.clone(), "login", quota("2/h")).unwrap();
    limiter.check("user:ada", 2).await.unwrap();
    assert!(!limiter.check("user:ada", 1).await.unwrap().is_allowed());
    limiter.reset("user:ada").await.unwrap();
    assert_eq!(
        fx.namespace.get_entry("login:user:ada").await.unwrap(),
        None
    );
    assert_eq!(limiter.check("user:ada", 1).await.unwrap().remaining(), 1);
}

#[tokio::test]
async fn an_admitted_request_costs_one_write_when_this_process_saw_the_key_last() {
    let fx = Fixture::faulty(true).await;
    let limiter = RateLimiter::new(fx.namespace.clone(), "api", quota("10/min")).unwrap();
    limiter.check("k", 1).await.unwrap();
    assert_eq!(fx.calls(), (1, 1), "a new key: one read, one write");
    limiter.check("k", 1).await.unwrap();
    assert_eq!(fx.calls(), (1, 2), "a known key: one write");

    // Another process changes the state: the remembered version fails, a read follows.
    let other = RateLimiter::new(fx.namespace.clone(), "api", quota("10/min")).unwrap();
    other.check("k", 1).await.unwrap();
    assert_eq!(fx.calls(), (2, 3));
    let outcome = limiter.check("k", 1).await.unwrap();
    assert_eq!(
        outcome.remaining(),
        6,
        "decided on the other process's state"
    );
    assert_eq!(fx.calls(), (3, 5), "a failed write, a read, a write");
    let stats = limiter.stats();
    assert_eq!((stats.reads, stats.writes, stats.conflicts), (2, 4, 1));

    // A denial on a remembered state is confirmed by a read, and writes nothing.
    limiter.check("k", 6).await.unwrap();
    let before = fx.calls();
    assert!(!limiter.check("k", 1).await.unwrap().is_allowed());
    assert_eq!(fx.calls(), (before.0 + 1, before.1));

    // Without the memory, every check reads.
    let forgetful = RateLimiter::builder(fx.namespace.clone())
        .with_quota("api", quota("10/min"))
        .with_cache_capacity(0)
        .build()
        .unwrap();
    let before = fx.calls();
    forgetful.check("other", 1).await.unwrap();
    forgetful.check("other", 1).await.unwrap();
    assert_eq!(fx.calls(), (before.0 + 2, before.1 + 2));
}

#[tokio::test]
async fn a_remembered_denial_is_not_trusted_after_a_reset_elsewhere() {
    let fx = Fixture::memory().await;
    let here = RateLimiter::new(fx.namespace.clone(), "api", quota("1/h")).unwrap();
    let there = RateLimiter::new(fx.namespace.clone(), "api", quota("1/h")).unwrap();
    assert!(here.check("k", 1).await.unwrap().is_allowed());
    assert!(!here.check("k", 1).await.unwrap().is_allowed());
    there.reset("k").await.unwrap();
    assert!(here.check("k", 1).await.unwrap().is_allowed());
}

#[tokio::test]
async fn cost_zero_reports_without_writing_and_too_costly_is_never_admitted() {
    let fx = Fixture::faulty(true).await;
    let limiter = RateLimiter::new(fx.namespace.clone(), "api", quota("10/min")).unwrap();
    let peek = limiter.check("k", 0).await.unwrap();
    assert!(peek.is_allowed());
    assert_eq!(peek.remaining(), 10);
    assert_eq!(fx.calls().1, 0, "no write");
    let too_costly = limiter.check("k", 11).await.unwrap();
    assert!(!too_costly.is_allowed());
    assert_eq!(too_costly.retry_after(), None);
    assert_eq!(too_costly.remaining(), 10);
    assert_eq!(fx.calls().1, 0, "a denial writes nothing");
}

#[tokio::test]
async fn a_store_without_compare_and_swap_needs_the_approximate_opt_in() {
    let fx = Fixture::faulty(false).await;
    let refused = RateLimiter::new(fx.namespace.clone(), "api", quota("10/min"));
    let error = refused.unwrap_err();
    assert_eq!(error, RateLimitConfigError::NotAtomic { backend: "memory" });
    assert!(error.to_string().contains("approximate()"), "{error}");

    let limiter = RateLimiter::builder(fx.namespace.clone())
        .with_quota("api", quota("10/min"))
        .with_approximate()
        .build()
        .unwrap();
    assert!(!limiter.is_exact());
    // Exact within this process, whose checks of one key wait for each other.
    let admitted = (0..30).map(|_| limiter.check("k", 1));
    let admitted = join_all(admitted)
        .await
        .into_iter()
        .filter(|r| r.as_ref().unwrap().is_allowed())
        .count();
    assert_eq!(admitted, 10);
}

#[tokio::test]
async fn bad_configurations_and_keys_are_typed_errors() {
    let fx = Fixture::memory().await;
    let builder = || RateLimiter::builder(fx.namespace.clone());
    assert_eq!(
        builder().build().unwrap_err(),
        RateLimitConfigError::NoQuotas
    );
    let twice: RateLimiterBuilder = builder()
        .with_quota("a", quota("1/s"))
        .with_quota("a", quota("2/s"));
    assert_eq!(
        twice.build().unwrap_err(),
        RateLimitConfigError::DuplicateQuotaName("a".into())
    );
    assert!(matches!(
        builder().with_quota("no spaces", quota("1/s")).build(),
        Err(RateLimitConfigError::InvalidQuotaName { .. })
    ));
    assert_eq!(
        builder()
            .with_quota("a", quota("1/s"))
            .with_max_attempts(0)
            .build()
            .unwrap_err(),
        RateLimitConfigError::ZeroAttempts
    );
    let limiter = builder().with_quota("a", quota("1/s")).build().unwrap();
    assert!(matches!(
        limiter.check("", 1).await,
        Err(RateLimitError::InvalidKey { len: 0 })
    ));
    assert!(matches!(
        limiter.check(&"k".repeat(257), 1).await,
        Err(RateLimitError::InvalidKey { len: 257 })
    ));
}

#[tokio::test]
async fn an_unreadable_state_counts_as_a_full_quota_and_is_replaced() {
    let fx = Fixture::memory().await;
    let options = PutOptions::new().ttl(Duration::from_secs(600));
    let _ = fx
        .namespace
        .put_with("api:k", "garbage", options)
        .await
        .unwrap();
    let limiter = RateLimiter::new(fx.namespace.clone(), "api", quota("10/min")).unwrap();
    let outcome = limiter.check("k", 1).await.unwrap();
    assert_eq!((outcome.is_allowed(), outcome.remaining()), (true, 9));
    let value = fx.namespace.get_text("api:k").await.unwrap().unwrap();
    assert!(value.parse::<u64>().is_ok(), "{value}");
}

#[tokio::test]
async fn store_errors_are_errors_never_admissions() {
    let fx = Fixture::faulty(true).await;
    let limiter = RateLimiter::new(fx.namespace.clone(), "api", quota("10/min")).unwrap();
    fx.faults().always(Ops::All, Fault::Error);
    let error = limiter.check("k", 1).await.unwrap_err();
    assert!(matches!(error, RateLimitError::Store(_)), "{error}");
    fx.faults().clear();
    assert!(limiter.check("k", 1).await.unwrap().is_allowed());
    let stats = limiter.stats();
    assert_eq!((stats.store_errors, stats.allowed), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_hanging_store_is_bounded_by_the_timeout() {
    let fx = Fixture::faulty(true).await;
    let limiter = RateLimiter::builder(fx.namespace.clone())
        .with_quota("api", quota("10/min"))
        .with_store_timeout(Duration::from_millis(250))
        .build()
        .unwrap();
    fx.faults().always(Ops::All, Fault::Hang);
    let started = tokio::time::Instant::now();
    let error = limiter.check("k", 1).await.unwrap_err();
    assert!(matches!(error, RateLimitError::Timeout(d) if d == Duration::from_millis(250)));
    assert_eq!(started.elapsed(), Duration::from_millis(250));
    assert_eq!(limiter.stats().timeouts, 1);
    // The lock of the key was released with the abandoned check.
    fx.faults().clear();
    assert!(limiter.check("k", 1).await.unwrap().is_allowed());
}

#[tokio::test]
async fn giving_up_after_lost_races_admits_nothing() {
    // One attempt only; another "process" writes between this limiter's read and write by
    // being the one that wins: emulate with a remembered version made stale.
    let fx = Fixture::memory().await;
    let limiter = RateLimiter::builder(fx.namespace.clone())
        .with_quota("api", quota("10/min"))
        .with_max_attempts(1)
        .build()
        .unwrap();
    limiter.check("k", 1).await.unwrap();
    let other = RateLimiter::new(fx.namespace.clone(), "api", quota("10/min")).unwrap();
    other.check("k", 1).await.unwrap();
    let error = limiter.check("k", 1).await.unwrap_err();
    assert!(matches!(error, RateLimitError::Contention { attempts: 1 }));
    assert_eq!(limiter.stats().contention, 1);
    // Nothing was spent by the failed check: 10 - 2 left.
    assert_eq!(other.check("k", 0).await.unwrap().remaining(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_quotas_stay_exact_across_racing_limiters() {
    // Two quotas, four limiters racing: neither quota is ever over-spent, and no request is
    // admitted unless both quotas had room for it.
    let fx = Fixture::memory().await;
    // The four limiters' first writes meet at a gate, so they race for certain.
    let (namespace, races) = kv_core::testing::RaceGate::wrap(&fx.namespace, 4);
    let limiters: Vec<RateLimiter> = (0..4)
        .map(|_| {
            RateLimiter::builder(namespace.clone())
                // The large quota first: it is written before the small one can deny under a
                // race, and then given back.
                .with_quota("large", quota("30/min"))
                .with_quota("small", quota("20/min"))
                .with_max_attempts(1000)
                .build()
                .unwrap()
        })
        .collect();
    let limiters = Arc::new(limiters);
    let checks = (0..200).map(|i| {
        let limiters = limiters.clone();
        tokio::spawn(async move { limiters[i % 4].check("k", 1).await.unwrap().is_allowed() })
    });
    let admitted = join_all(checks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(admitted, 20);
    // The large quota holds exactly the admitted requests (refunds gave back the rest).
    let probe = RateLimiter::new(fx.namespace.clone(), "large", quota("30/min")).unwrap();
    assert_eq!(probe.check("k", 0).await.unwrap().remaining(), 10);
    let refunds: u64 = limiters.iter().map(|l| l.stats().refunds).sum();
    let conflicts: u64 = limiters.iter().map(|l| l.stats().conflicts).sum();
    eprintln!("{conflicts} lost races, {refunds} refunds");
    assert!(races.conflicts() >= 3, "the limiters collided");
    assert!(conflicts >= 3, "the limiters counted their lost races");
}

#[path = "../../kv-backends/tests/support/redis_server.rs"]
mod redis_server;

/// Two limiters on two independent Redis connections (as two processes sharing one Redis
/// would be), 2 x 100 concurrent requests for one key against a quota of 50: exactly 50 pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exact_across_two_redis_clients() {
    let server = redis_server::RedisServer::start();
    let clock = kv_core::ManualClock::at_unix_secs(START);
    let mut limiters = Vec::new();
    for _ in 0..2 {
        let backend = kv_backends::redis::RedisBackend::builder(server.url())
            .clock(clock.shared())
            .connect()
            .await
            .unwrap();
        let ns = kv_core::Store::new(backend)
            .namespace("RATE_LIMITS")
            .await
            .unwrap();
        limiters.push(RateLimiter::new(ns, "api", quota("50/min")).unwrap());
    }
    assert_eq!(admitted_concurrently(&limiters, 200).await, 50);
    let allowed: u64 = limiters.iter().map(|l| l.stats().allowed).sum();
    assert_eq!(allowed, 50);
}

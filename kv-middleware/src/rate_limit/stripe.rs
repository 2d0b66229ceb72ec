//! [`StripeLock`]: the lock under which checks of one limiter stripe run one at a time.
//!
//! A check holds it across its store calls (a remote store's round trips), so it must be an
//! asynchronous lock; but nearly every acquisition is uncontended, and tokio's mutex pays for
//! its waiter list even then (its release takes a lock of that list). This one is the classic
//! three-state futex mutex with tokio's `Notify` in place of the futex: taking a free lock is
//! one compare-and-swap, releasing it one swap, and `Notify` is touched only when a task waits.

use std::cell::UnsafeCell;
use std::ops::{Deref, DerefMut};
use std::pin::pin;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

const UNLOCKED: u8 = 0;
const LOCKED: u8 = 1;
/// Locked, and a task may be waiting: the holder's release wakes one.
const CONTENDED: u8 = 2;

/// An asynchronous lock whose uncontended path is one atomic operation each way.
pub(super) struct StripeLock<T> {
    state: AtomicU8,
    waiters: Notify,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a `StripeGuard`, and `state` lets one guard exist
// at a time; taking it (Acquire) and releasing it (Release) order one holder's writes before
// the next holder's reads. The value moves between threads with the guard, hence `T: Send`.
unsafe impl<T: Send> Sync for StripeLock<T> {}

impl<T: Default> Default for StripeLock<T> {
    fn default() -> Self {
        StripeLock {
            state: AtomicU8::new(UNLOCKED),
            waiters: Notify::new(),
            value: UnsafeCell::new(T::default()),
        }
    }
}

impl<T> StripeLock<T> {
    /// The lock if it is free now.
    pub(super) fn try_lock(&self) -> Option<StripeGuard<'_, T>> {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| StripeGuard { lock: self })
    }

    /// The lock, once it is free. Cancel-safe: dropping the future gives up the wait.
    pub(super) async fn lock(&self) -> StripeGuard<'_, T> {
        if let Some(guard) = self.try_lock() {
            return guard;
        }
        loop {
            // Registered before the state says "waiting", so a release between the two still
            // wakes this task (a notification without a registered waiter is kept too).
            let mut notified = pin!(self.waiters.notified());
            notified.as_mut().enable();
            // Taken in the contended state: this holder cannot know whether others wait, so
            // its release wakes one (a needless wake-up only makes a waiter look again).
            if self.state.swap(CONTENDED, Ordering::Acquire) == UNLOCKED {
                return StripeGuard { lock: self };
            }
            notified.await;
        }
    }
}

/// Access to a [`StripeLock`]'s value; dropping it releases the lock.
pub(super) struct StripeGuard<'a, T> {
    lock: &'a StripeLock<T>,
}

impl<T> Deref for StripeGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: this guard is the only one (see `StripeLock`'s `Sync`).
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for StripeGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: this guard is the only one, and borrowed mutably.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for StripeGuard<'_, T> {
    fn drop(&mut self) {
        if self.lock.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            self.lock.waiters.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Many tasks on several threads increment a plain counter under the lock, each yielding
    /// while it holds it (so the others find it taken and wait): no increment is lost, the
    /// waits really happened, and every waiter was woken (the test ends).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn excludes_and_wakes_every_waiter() {
        #[derive(Default)]
        struct Counted {
            value: u64,
            inside: bool,
        }
        let lock = Arc::new(StripeLock::<Counted>::default());
        let contended = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let lock = lock.clone();
            let contended = contended.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..200 {
                    let mut guard = match lock.try_lock() {
                        Some(guard) => guard,
                        None => {
                            contended.fetch_add(1, Ordering::Relaxed);
                            lock.lock().await
                        }
                    };
                    assert!(!guard.inside, "two holders at once");
                    guard.inside = true;
                    let before = guard.value;
                    tokio::task::yield_now().await;
                    guard.value = before + 1;
                    guard.inside = false;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(lock.try_lock().expect("free at the end").value, 16 * 200);
        assert!(
            contended.load(Ordering::Relaxed) > 0,
            "the tasks never collided"
        );
    }

    /// A waiter whose wait is cancelled does not keep the lock or swallow the next wake-up.
    #[tokio::test(flavor = "current_thread")]
    async fn a_cancelled_wait_loses_nothing() {
        let lock = StripeLock::<u32>::default();
        let held = lock.try_lock().unwrap();
        let mut waiting = Box::pin(lock.lock());
        assert!(futures_poll_once(waiting.as_mut()).await.is_none());
        drop(waiting);
        drop(held);
        let mut guard = lock.lock().await;
        *guard += 1;
        drop(guard);
        assert_eq!(*lock.try_lock().unwrap(), 1);
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
        let mut future = future;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(out) => Some(out),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}

//! [`bounded`]: the one lazily started timeout of the layers.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

/// Runs `future` for at most `limit` (`None`: as long as it takes); `None` when it took longer.
/// The timer is made (and boxed) only if the future is not ready on its first poll, so an
/// in-process store's call costs no timer and the future stays small; the timer needs a tokio
/// runtime with its time driver only then.
pub(crate) async fn bounded<F: Future>(limit: Option<Duration>, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(value) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(value));
        }
        let Some(limit) = limit else {
            return Poll::Pending;
        };
        let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ready_at_once_needs_no_timer_and_slow_futures_time_out() {
        // Ready on the first poll: answered even with a zero limit.
        assert_eq!(bounded(Some(Duration::ZERO), async { 7 }).await, Some(7));
        let slow = || tokio::time::sleep(Duration::from_secs(10));
        let started = tokio::time::Instant::now();
        assert_eq!(bounded(Some(Duration::from_secs(3)), slow()).await, None);
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert_eq!(bounded(None, slow()).await, Some(()));
        assert_eq!(started.elapsed(), Duration::from_secs(13));
    }
}

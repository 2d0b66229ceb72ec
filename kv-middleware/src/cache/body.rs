//! The response body of the cache layer, and bounded buffering of the origin's body.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use kv_core::BoxError;

/// The body of every response of [`CacheService`](super::CacheService): bytes from the store
/// or buffered from the origin, or the origin's body streamed through (a response the cache
/// does not keep, or one larger than the body size cap).
pub struct CacheBody<B> {
    kind: Kind<B>,
}

enum Kind<B> {
    Full {
        data: Option<Bytes>,
    },
    Stream {
        /// Frames already read while deciding whether to buffer.
        prefix: VecDeque<Frame<Bytes>>,
        /// An error met while buffering, yielded after the prefix.
        error: Option<BoxError>,
        rest: Option<Pin<Box<B>>>,
    },
}

impl<B> fmt::Debug for CacheBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Full { data } => f
                .debug_struct("CacheBody::Full")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
            Kind::Stream { prefix, .. } => f
                .debug_struct("CacheBody::Stream")
                .field("prefix_frames", &prefix.len())
                .finish(),
        }
    }
}

impl<B> CacheBody<B> {
    /// A body of these bytes.
    pub(crate) fn full(data: Bytes) -> Self {
        CacheBody {
            kind: Kind::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// An empty body.
    pub(crate) fn empty() -> Self {
        CacheBody {
            kind: Kind::Full { data: None },
        }
    }

    /// The origin's body, streamed through.
    pub(crate) fn stream(body: B) -> Self {
        Self::resumed(VecDeque::new(), None, Some(Box::pin(body)))
    }

    fn resumed(
        prefix: VecDeque<Frame<Bytes>>,
        error: Option<BoxError>,
        rest: Option<Pin<Box<B>>>,
    ) -> Self {
        CacheBody {
            kind: Kind::Stream {
                prefix,
                error,
                rest,
            },
        }
    }
}

impl<B> Body for CacheBody<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Kind::Stream {
                prefix,
                error,
                rest,
            } => {
                if let Some(frame) = prefix.pop_front() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                if let Some(error) = error.take() {
                    *rest = None;
                    return Poll::Ready(Some(Err(error)));
                }
                let Some(body) = rest.as_mut() else {
                    return Poll::Ready(None);
                };
                match body.as_mut().poll_frame(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(None) => {
                        *rest = None;
                        Poll::Ready(None)
                    }
                    Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame.map_data(to_bytes)))),
                    Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full { data } => data.is_none(),
            Kind::Stream {
                prefix,
                error,
                rest,
            } => {
                prefix.is_empty()
                    && error.is_none()
                    && rest.as_ref().map_or(true, |body| body.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Stream { prefix, rest, .. } => {
                let buffered: u64 = prefix
                    .iter()
                    .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
                    .sum();
                let mut hint = rest
                    .as_ref()
                    .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint());
                let lower = hint.lower().saturating_add(buffered);
                let upper = hint.upper().map(|u| u.saturating_add(buffered));
                hint.set_lower(lower);
                if let Some(upper) = upper {
                    hint.set_upper(upper);
                }
                hint
            }
        }
    }
}

fn to_bytes<D: Buf>(mut data: D) -> Bytes {
    data.copy_to_bytes(data.remaining())
}

/// An origin body after [`buffer`].
pub(crate) enum Buffered<B> {
    /// The whole body, at most the cap.
    Complete(Bytes),
    /// Larger than the cap, with trailers, or failed: to be streamed through as it is.
    Stream(CacheBody<B>),
}

/// Reads `body` into memory when it ends within `max` bytes without trailers; otherwise gives
/// back a body that replays what was read and streams the rest. Never holds more than `max`
/// bytes (plus one frame).
pub(crate) async fn buffer<B>(body: B, max: usize) -> Buffered<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    if body.size_hint().lower() > max as u64 {
        return Buffered::Stream(CacheBody::stream(body));
    }
    let mut body = Box::pin(body);
    let mut frames: VecDeque<Frame<Bytes>> = VecDeque::new();
    let mut total = 0usize;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(error)) => {
                return Buffered::Stream(CacheBody::resumed(frames, Some(error.into()), None));
            }
            Some(Ok(frame)) => {
                let frame = frame.map_data(to_bytes);
                let is_trailers = frame.is_trailers();
                total = total.saturating_add(frame.data_ref().map_or(0, Bytes::len));
                frames.push_back(frame);
                if is_trailers || total > max {
                    return Buffered::Stream(CacheBody::resumed(frames, None, Some(body)));
                }
            }
        }
    }
    let mut datas = frames.into_iter().filter_map(|f| f.into_data().ok());
    let bytes = match (datas.next(), datas.next()) {
        (None, _) => Bytes::new(),
        (Some(only), None) => only,
        (Some(first), Some(second)) => {
            let mut all = BytesMut::with_capacity(total);
            all.extend_from_slice(&first);
            all.extend_from_slice(&second);
            for more in datas {
                all.extend_from_slice(&more);
            }
            all.freeze()
        }
    };
    Buffered::Complete(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;
    use std::convert::Infallible;

    /// A body of several data frames, optionally ending in trailers, with no size hint.
    struct Chunks {
        frames: VecDeque<Frame<Bytes>>,
    }

    impl Chunks {
        fn new(parts: &[&'static str], trailers: bool) -> Self {
            let mut frames: VecDeque<_> = parts
                .iter()
                .map(|p| Frame::data(Bytes::from_static(p.as_bytes())))
                .collect();
            if trailers {
                frames.push_back(Frame::trailers(http::HeaderMap::new()));
            }
            Chunks { frames }
        }
    }

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(self.frames.pop_front().map(Ok))
        }
    }

    async fn collect<B: Body<Data = Bytes, Error = BoxError>>(body: B) -> Vec<u8> {
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn buffers_small_bodies() {
        let Buffered::Complete(bytes) = buffer(Chunks::new(&["ab", "c", "d"], false), 4).await
        else {
            panic!("fits");
        };
        assert_eq!(&bytes[..], b"abcd");
        let Buffered::Complete(bytes) = buffer(Full::new(Bytes::from_static(b"abc")), 3).await
        else {
            panic!("fits");
        };
        assert_eq!(&bytes[..], b"abc");
    }

    #[tokio::test]
    async fn streams_large_bodies_with_everything_read_so_far() {
        let Buffered::Stream(body) = buffer(Chunks::new(&["ab", "cd", "ef"], false), 3).await
        else {
            panic!("too large");
        };
        assert_eq!(collect(body).await, b"abcdef");
        let Buffered::Stream(body) = buffer(Full::new(Bytes::from_static(b"abcd")), 3).await else {
            panic!("too large by its size hint");
        };
        assert_eq!(collect(body).await, b"abcd");
        let Buffered::Stream(body) = buffer(Chunks::new(&["ab"], true), 100).await else {
            panic!("trailers are not cached");
        };
        let collected = body.collect().await.unwrap();
        assert!(collected.trailers().is_some());
        assert_eq!(&collected.to_bytes()[..], b"ab");
    }
}

//! [`StackText`]: text built on the stack, on the heap only when it outgrows its buffer.

use std::fmt;

/// UTF-8 text of up to `N` bytes held inline (the keys and header values built for every
/// request fit), spilling to the heap beyond. Only whole `&str`s go in, so it is always valid
/// UTF-8. (A plain array and length rather than a `SmallVec`: its pushes of a few bytes are a
/// bounds check and a copy, where `SmallVec::extend_from_slice` goes through its general
/// reserve path each time.)
#[derive(Clone)]
pub(crate) struct StackText<const N: usize> {
    len: usize,
    buf: [u8; N],
    /// Everything, once it outgrew `buf`.
    spilled: Option<String>,
}

impl<const N: usize> Default for StackText<N> {
    fn default() -> Self {
        StackText::new()
    }
}

impl<const N: usize> StackText<N> {
    /// Empty text.
    #[inline]
    pub(crate) fn new() -> Self {
        StackText {
            len: 0,
            buf: [0; N],
            spilled: None,
        }
    }

    /// Appends `text`.
    #[inline]
    pub(crate) fn push_str(&mut self, text: &str) {
        let end = self.len + text.len();
        if self.spilled.is_none() && end <= N {
            self.buf[self.len..end].copy_from_slice(text.as_bytes());
            self.len = end;
        } else {
            self.spill(text);
        }
    }

    #[cold]
    fn spill(&mut self, text: &str) {
        let spilled = self.spilled.get_or_insert_with(|| {
            let mut heap = String::with_capacity(N * 2);
            heap.push_str(Self::inline_str(&self.buf[..self.len]));
            heap
        });
        spilled.push_str(text);
    }

    fn inline_str(bytes: &[u8]) -> &str {
        // SAFETY: the inline bytes only ever receive whole `&str`s (`push_str`) and are only
        // ever cut back to empty, so they are valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// Appends `n` in decimal.
    #[inline]
    pub(crate) fn push_u64(&mut self, n: u64) {
        self.push_str(itoa::Buffer::new().format(n));
    }

    /// Appends `n` in decimal (an address's octet: itoa's table, no check of the digits'
    /// UTF-8, which a hand-written `from_utf8` cost on every request).
    #[inline]
    pub(crate) fn push_u8(&mut self, n: u8) {
        self.push_str(itoa::Buffer::new().format(n));
    }

    /// Empties the text, keeping a heap buffer it has.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        if let Some(spilled) = &mut self.spilled {
            spilled.clear();
        }
    }

    /// The text.
    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        match &self.spilled {
            Some(spilled) => spilled,
            None => Self::inline_str(&self.buf[..self.len]),
        }
    }

    /// The text's bytes.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.as_str().as_bytes()
    }

    /// Whether the text outgrew the stack buffer.
    pub(crate) fn spilled(&self) -> bool {
        self.spilled.is_some()
    }
}

impl<const N: usize> PartialEq for StackText<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl<const N: usize> Eq for StackText<N> {}

impl<const N: usize> std::hash::Hash for StackText<N> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl<const N: usize> fmt::Write for StackText<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

impl<const N: usize> fmt::Debug for StackText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> fmt::Display for StackText<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> From<&str> for StackText<N> {
    fn from(text: &str) -> Self {
        let mut out = StackText::new();
        out.push_str(text);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::*;

    #[test]
    fn stays_on_the_stack_until_full_then_spills_intact() {
        let mut text = StackText::<8>::new();
        text.push_str("ip:");
        text.push_u64(42);
        assert_eq!((text.as_str(), text.spilled()), ("ip:42", false));
        write!(text, "/{}-é", 1234).unwrap();
        assert_eq!((text.as_str(), text.spilled()), ("ip:42/1234-é", true));
        text.clear();
        assert_eq!(text.as_str(), "");
        let long = "x".repeat(100);
        let mut spilled = StackText::<8>::from(long.as_str());
        assert_eq!((spilled.as_str(), spilled.spilled()), (long.as_str(), true));
        spilled.push_str("yz");
        assert_eq!(spilled.as_str(), format!("{long}yz"));
        for n in [0, 9, 10, 99, 100, u64::MAX] {
            text.clear();
            text.push_u64(n);
            assert_eq!(text.as_str(), n.to_string());
        }
        for n in 0..=u8::MAX {
            text.clear();
            text.push_u8(n);
            assert_eq!(text.as_str(), n.to_string());
        }
    }
}

//! [`StackText`]: text built on the stack, on the heap only when it outgrows its buffer.

use std::fmt;

use smallvec::SmallVec;

/// UTF-8 text of up to `N` bytes held inline (the keys and header values built for every
/// request fit), spilling to the heap beyond. Only whole `&str`s go in, so it is always valid
/// UTF-8.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub(crate) struct StackText<const N: usize> {
    bytes: SmallVec<[u8; N]>,
}

impl<const N: usize> StackText<N> {
    /// Empty text.
    pub(crate) fn new() -> Self {
        StackText {
            bytes: SmallVec::new(),
        }
    }

    /// Appends `text`.
    #[inline]
    pub(crate) fn push_str(&mut self, text: &str) {
        self.bytes.extend_from_slice(text.as_bytes());
    }

    /// Appends `n` in decimal.
    #[inline]
    pub(crate) fn push_u64(&mut self, n: u64) {
        self.push_str(itoa::Buffer::new().format(n));
    }

    /// Empties the text, keeping its buffer.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
    }

    /// The text.
    #[inline]
    pub(crate) fn as_str(&self) -> &str {
        // SAFETY: `bytes` only ever receives whole `&str`s (`push_str`, `write_str`) and is
        // only ever shortened to empty, so it is valid UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.bytes) }
    }

    /// The text's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether the text outgrew the stack buffer.
    pub(crate) fn spilled(&self) -> bool {
        self.bytes.spilled()
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
        for n in [0, 9, 10, 99, 100, u64::MAX] {
            text.clear();
            text.push_u64(n);
            assert_eq!(text.as_str(), n.to_string());
        }
    }
}

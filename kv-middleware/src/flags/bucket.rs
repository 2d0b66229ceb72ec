//! flagd-compatible percentage bucketing: MurmurHash3 (x86, 32-bit) of salt and key, scaled to
//! the total weight.

/// MurmurHash3 x86 32-bit of the concatenation of `parts`, without building it.
///
/// The same function as flagd's (`murmur3.StringSum32`, seed 0): hashing `["flag", "user"]`
/// equals hashing `"flaguser"`.
pub fn murmur3_x86_32(parts: &[&[u8]], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;

    let mut h = seed;
    let mut len: usize = 0;
    let mut block: u32 = 0;
    let mut filled: u32 = 0;

    let mix = |h: &mut u32, k: u32| {
        let k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        *h ^= k;
        *h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    };

    for part in parts {
        len += part.len();
        let mut bytes = *part;
        // Finish a block started by the previous part.
        while filled != 0 && !bytes.is_empty() {
            block |= u32::from(bytes[0]) << (8 * filled);
            bytes = &bytes[1..];
            filled += 1;
            if filled == 4 {
                mix(&mut h, block);
                block = 0;
                filled = 0;
            }
        }
        let mut chunks = bytes.chunks_exact(4);
        for chunk in &mut chunks {
            mix(
                &mut h,
                u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
            );
        }
        for &byte in chunks.remainder() {
            block |= u32::from(byte) << (8 * filled);
            filled += 1;
        }
    }

    if filled != 0 {
        let k = block.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }

    h ^= len as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// The bucket of a key in `0..total_weight`: `(murmur3(salt ++ key) * total_weight) >> 32`.
///
/// `total_weight` must be at least 1 and at most `u32::MAX`; growing one variant's weight only
/// moves the boundary next to it, so a user in a 25 % slice stays in it at 50 %.
pub fn bucket(salt: &[u8], key: &[u8], total_weight: u64) -> u64 {
    let hash = murmur3_x86_32(&[salt, key], 0);
    (u64::from(hash) * total_weight) >> 32
}

/// The variant flagd's `fractional` picks: the first of `weights` (in order) whose running sum
/// of weights is greater than the key's [`bucket`]. `None` when the weights sum to 0 or more
/// than `u32::MAX`.
///
/// ```
/// use kv_middleware::flags::fractional;
///
/// let weights = [("red", 25), ("blue", 25), ("green", 25), ("yellow", 25)];
/// // flagd's default bucketing key is the flag key followed by the targeting key.
/// assert_eq!(fractional("headerColor", "rachel@faas.com", &weights), Some(&"blue"));
/// ```
pub fn fractional<'a, V>(salt: &str, key: &str, weights: &'a [(V, u32)]) -> Option<&'a V> {
    let total: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 || total > u64::from(u32::MAX) {
        return None;
    }
    let bucket = bucket(salt.as_bytes(), key.as_bytes(), total);
    let mut running = 0u64;
    for (variant, weight) in weights {
        running += u64::from(*weight);
        if running > bucket {
            return Some(variant);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_reference_values() {
        assert_eq!(murmur3_x86_32(&[b""], 0), 0);
        assert_eq!(murmur3_x86_32(&[b""], 1), 0x514e_28b7);
        assert_eq!(murmur3_x86_32(&[b"hello"], 0), 0x248b_fa47);
        // Widely published values of the reference implementation.
        assert_eq!(murmur3_x86_32(&[b""], 0xffff_ffff), 0x81f1_6f39);
        assert_eq!(murmur3_x86_32(&[b"\0\0\0\0"], 0), 0x2362_f9de);
        assert_eq!(murmur3_x86_32(&[b"aaaa"], 0x9747_b28c), 0x5a97_808a);
        assert_eq!(
            murmur3_x86_32(&[b"Hello, world!"], 0x9747_b28c),
            0x2488_4cba
        );
    }

    #[test]
    fn split_input_hashes_like_the_concatenation() {
        let text = b"The quick brown fox jumps over the lazy dog";
        let whole = murmur3_x86_32(&[text], 0);
        for cut in 0..=text.len() {
            for cut2 in cut..=text.len() {
                let parts: [&[u8]; 3] = [&text[..cut], &text[cut..cut2], &text[cut2..]];
                assert_eq!(murmur3_x86_32(&parts, 0), whole, "cuts {cut} {cut2}");
            }
        }
    }

    #[test]
    fn zero_or_oversized_weights_pick_nothing() {
        assert_eq!(fractional("f", "k", &[("a", 0), ("b", 0)]), None);
        assert_eq!(fractional::<&str>("f", "k", &[]), None);
        assert_eq!(fractional("f", "k", &[("a", u32::MAX), ("b", 1)]), None);
        assert_eq!(fractional("f", "k", &[("a", u32::MAX)]), Some(&"a"));
    }
}

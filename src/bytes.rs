//! Appending and copying short pieces of bytes without calling memcpy.
//!
//! musl's memcpy starts every copy with `rep movsq` and copies the ends a
//! byte at a time: cheap for a page, slow for a service's name, the 100
//! bytes of a typical log line or the pieces of a JSON reply. With
//! three such copies per line it was 60% of the relay's CPU (perf, 1 M
//! lines of 100 bytes). Fixed-size blocks are copied by inlined loads and
//! stores instead.

/// Above this, memcpy's fixed cost no longer matters.
const INLINE_MAX: usize = 512;

/// Appends `bytes` to `out`, as `extend_from_slice` does.
#[inline]
pub fn append(out: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() > INLINE_MAX {
        out.extend_from_slice(bytes);
        return;
    }
    out.reserve(bytes.len());
    let mut rest = bytes;
    while let Some((block, tail)) = rest.split_first_chunk::<16>() {
        out.extend_from_slice(block);
        rest = tail;
    }
    if let Some((block, tail)) = rest.split_first_chunk::<8>() {
        out.extend_from_slice(block);
        rest = tail;
    }
    if let Some((block, tail)) = rest.split_first_chunk::<4>() {
        out.extend_from_slice(block);
        rest = tail;
    }
    // Not a byte loop: keys and values of a status answer are a few
    // bytes each, and a loop for their last 1-3 bytes was most of the
    // time this function took for one.
    if let Some((block, tail)) = rest.split_first_chunk::<2>() {
        out.extend_from_slice(block);
        rest = tail;
    }
    out.extend(rest.first());
}

/// Above this, `copy` calls memcpy.
const COPY_INLINE_MAX: usize = 256;

/// Copies `src` into `dst` when it has the same length (as
/// `copy_from_slice` does; other lengths copy nothing). Without a loop:
/// LLVM turns a loop of block copies back into a call to memcpy.
#[inline]
pub fn copy(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    debug_assert_eq!(dst.len(), n);
    if dst.len() != n {
        return;
    }
    // Two blocks of the largest size that fits twice, one from the start
    // and one to the end; where they overlap, a byte is written twice.
    match n {
        0 => {}
        1..=3 => {
            for i in [0, n / 2, n - 1] {
                if let (Some(d), Some(s)) = (dst.get_mut(i), src.get(i)) {
                    *d = *s;
                }
            }
        }
        4..=7 => ends::<4>(dst, src),
        8..=15 => ends::<8>(dst, src),
        16..=31 => ends::<16>(dst, src),
        32..=63 => ends::<32>(dst, src),
        64..=127 => ends::<64>(dst, src),
        128..=COPY_INLINE_MAX => {
            let (d0, d1) = dst.split_at_mut(n / 2);
            let (s0, s1) = src.split_at(n / 2);
            ends::<64>(d0, s0);
            ends::<64>(d1, s1);
        }
        _ => dst.copy_from_slice(src),
    }
}

/// The first and the last `N` bytes (for N <= len <= 2N): a fixed-size
/// copy each, which compiles to loads and stores.
#[inline(always)]
fn ends<const N: usize>(dst: &mut [u8], src: &[u8]) {
    if let (Some(d), Some(s)) = (dst.first_chunk_mut::<N>(), src.first_chunk::<N>()) {
        *d = *s;
    }
    if let (Some(d), Some(s)) = (dst.last_chunk_mut::<N>(), src.last_chunk::<N>()) {
        *d = *s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_every_length_whole_and_in_order() {
        let source: Vec<u8> = (0..=255u8).cycle().take(2 * INLINE_MAX + 3).collect();
        for len in 0..source.len() {
            let mut out = b"head".to_vec();
            append(&mut out, &source[..len]);
            assert_eq!(&out[..4], b"head");
            assert_eq!(&out[4..], &source[..len], "length {len}");
        }
    }

    #[test]
    fn copies_every_length_whole() {
        let source: Vec<u8> = (0..=255u8).cycle().take(2 * COPY_INLINE_MAX + 3).collect();
        for len in 0..source.len() {
            let mut out = vec![0xAA; len + 2];
            copy(&mut out[1..=len], &source[..len]);
            assert_eq!(out[0], 0xAA);
            assert_eq!(&out[1..=len], &source[..len], "length {len}");
            assert_eq!(out[len + 1], 0xAA, "nothing after, length {len}");
        }
    }
}

//! Helpers shared by the fuzz targets: cutting one input into chunks of varying sizes, so
//! every incremental decoder can be checked against feeding the same bytes whole.

/// Cut `data` into pieces whose sizes (1 to `max`) follow a small generator seeded by
/// `seed`. Seed 0 gives pieces of one byte.
pub fn chunks(data: &[u8], seed: u8, max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut state = u32::from(seed);
    let mut rest = data;
    while !rest.is_empty() {
        let n = if seed == 0 {
            1
        } else {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 16) as usize % max.max(1) + 1
        };
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// The first occurrence of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Split on every `sep` (left to right, non-overlapping), like `str::split`.
pub fn split<'a>(mut hay: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(i) = find(hay, sep) {
        out.push(&hay[..i]);
        hay = &hay[i + sep.len()..];
    }
    out.push(hay);
    out
}

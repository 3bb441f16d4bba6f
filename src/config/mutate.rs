//! A small deterministic mutator for robustness tests: the fuzz targets'
//! idea, run in `cargo test` on every CI run without a nightly toolchain.

/// xorshift64*: fast, seedable, good enough to pick mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Fragments that make mutations land near the grammar.
const TOKENS: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b"=",
    b"\"",
    b"'''",
    b"\"\"\"",
    b"\n",
    b"#",
    b",",
    b".",
    b"-",
    b"0",
    b"-1",
    b"99999999999999999999",
    b"1e309",
    b"true",
    b"[ready]",
    b"[health]",
    b"[log]",
    b"requires",
    b"user",
    b"command",
    b"run",
    b"type",
    b"\"oneshot\"",
    b"fd",
    b"tcp",
    b"\"1.2.3.4:99999\"",
    b"\\u0000",
    b"\xff",
    b"\xc3",
    b"ms",
    b"h",
    b"inf",
    b"nan",
];

/// Applies one to four random edits to `data`.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(5) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                if let Some(b) = data.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => {
                let t = TOKENS.get(rng.below(TOKENS.len())).copied().unwrap_or(b"");
                data.splice(at..at, t.iter().copied());
            }
            2 if at < data.len() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at..end);
            }
            3 if at < data.len() => {
                let end = (at + 1 + rng.below(32)).min(data.len());
                let copy: Vec<u8> = data.get(at..end).unwrap_or_default().to_vec();
                let to = rng.below(data.len() + 1);
                data.splice(to..to, copy);
            }
            _ => data.push(rng.next_u64() as u8),
        }
    }
}

//! The last lines of one service, kept in memory for `svctl logs`: a ring
//! bounded both in lines and in bytes, dropping the oldest first.

use std::collections::VecDeque;
use std::time::SystemTime;

use super::Stream;

/// One remembered line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time: SystemTime,
    pub stream: Stream,
    pub text: Box<[u8]>,
    pub continued: bool,
}

/// Bounded history of one service.
#[derive(Debug)]
pub struct Ring {
    entries: VecDeque<Entry>,
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
}

impl Ring {
    pub fn new(max_lines: usize, max_bytes: usize) -> Ring {
        Ring {
            entries: VecDeque::new(),
            bytes: 0,
            max_lines,
            max_bytes,
        }
    }

    pub fn push(&mut self, entry: Entry) {
        if self.max_lines == 0 || entry.text.len() > self.max_bytes {
            return;
        }
        self.bytes += entry.text.len();
        self.entries.push_back(entry);
        while self.entries.len() > self.max_lines || self.bytes > self.max_bytes {
            match self.entries.pop_front() {
                Some(old) => self.bytes -= old.text.len(),
                None => break,
            }
        }
    }

    /// The same lines under new limits: the newest that fit are kept.
    pub fn resized(self, max_lines: usize, max_bytes: usize) -> Ring {
        let mut ring = Ring::new(max_lines, max_bytes);
        for e in self.entries {
            ring.push(e);
        }
        ring
    }

    /// The last `n` entries, oldest first.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .skip(self.entries.len().saturating_sub(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(text: &str) -> Entry {
        Entry {
            time: SystemTime::UNIX_EPOCH,
            stream: Stream::Stdout,
            text: text.as_bytes().into(),
            continued: false,
        }
    }

    #[test]
    fn bounded_by_lines_and_bytes() {
        let mut r = Ring::new(3, 10);
        for t in ["a", "b", "c", "d"] {
            r.push(e(t));
        }
        let texts: Vec<&[u8]> = r.last(10).map(|e| &*e.text).collect();
        assert_eq!(texts, [b"b", b"c", b"d"]);
        r.push(e("123456789"));
        let texts: Vec<&[u8]> = r.last(10).map(|e| &*e.text).collect();
        assert_eq!(
            texts,
            [&b"d"[..], b"123456789"],
            "bytes bound drops the oldest"
        );
        assert_eq!(r.last(1).count(), 1);
        r.push(e("this is longer than ten"));
        assert_eq!(
            r.last(usize::MAX).count(),
            2,
            "a line larger than the ring is not kept"
        );
    }
}

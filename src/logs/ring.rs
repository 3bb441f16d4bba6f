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
    pub text: Vec<u8>,
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

    /// Remembers a line. Once the ring is full, as it is in steady state,
    /// the buffer of the line it pushes out holds the new one: no
    /// allocation per line (unless that buffer is much larger than the
    /// line, which would hold memory the byte limit does not see).
    pub fn push_line(&mut self, time: SystemTime, stream: Stream, text: &[u8], continued: bool) {
        if self.max_lines == 0 || text.len() > self.max_bytes {
            return;
        }
        let full = self.entries.len() >= self.max_lines || self.bytes + text.len() > self.max_bytes;
        let reused = if full { self.entries.pop_front() } else { None };
        let entry = match reused {
            Some(mut old) if old.text.capacity() <= 2 * text.len() + 256 => {
                self.bytes -= old.text.len();
                old.text.clear();
                crate::bytes::append(&mut old.text, text);
                old.time = time;
                old.stream = stream;
                old.continued = continued;
                old
            }
            other => {
                if let Some(old) = other {
                    self.bytes -= old.text.len();
                }
                Entry {
                    time,
                    stream,
                    text: text.to_vec(),
                    continued,
                }
            }
        };
        self.push(entry);
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
            text: text.as_bytes().to_vec(),
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

    #[test]
    fn push_line_keeps_what_push_keeps() {
        // Lines of many lengths, a long one among them, under both limits.
        let texts: Vec<String> = (0..200)
            .map(|i| "x".repeat(if i % 37 == 0 { 900 } else { i % 13 }))
            .collect();
        for (lines, bytes) in [(5, 1000), (50, 300), (1, 10), (0, 10)] {
            let (mut a, mut b) = (Ring::new(lines, bytes), Ring::new(lines, bytes));
            for (i, t) in texts.iter().enumerate() {
                let stream = if i % 2 == 0 {
                    Stream::Stdout
                } else {
                    Stream::Stderr
                };
                let mut entry = e(t);
                entry.stream = stream;
                entry.continued = i % 3 == 0;
                a.push(entry);
                b.push_line(SystemTime::UNIX_EPOCH, stream, t.as_bytes(), i % 3 == 0);
                assert_eq!(a.bytes, b.bytes);
                assert!(
                    a.last(usize::MAX).eq(b.last(usize::MAX)),
                    "{lines} {bytes} at {i}"
                );
            }
        }
    }
}

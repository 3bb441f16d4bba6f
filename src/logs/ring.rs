//! The last lines of one service, kept in memory for `svctl logs`: a ring
//! bounded both in lines and in bytes, dropping the oldest first.
//!
//! The texts sit back to back in one circular byte buffer, and each line
//! is a small record of its length: remembering a relayed line is two
//! sequential copies. With a `Vec` per line, reused from the line pushed
//! out, every line wrote to memory last touched a thousand lines before,
//! a quarter of the relay's CPU.

use std::collections::VecDeque;
use std::time::SystemTime;

use super::Stream;

/// One remembered line, as handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub time: SystemTime,
    pub stream: Stream,
    pub text: Vec<u8>,
    pub continued: bool,
}

/// What the ring keeps of a line besides its text.
#[derive(Debug, Clone, Copy)]
struct Meta {
    time: SystemTime,
    /// Bytes of text: at most `max_bytes`, which is under 4 GiB.
    len: u32,
    stream: Stream,
    continued: bool,
}

/// The smallest text buffer a ring allocates, once it has a line.
const MIN_BUFFER: usize = 4096;

/// Bounded history of one service.
#[derive(Debug)]
pub struct Ring {
    /// Circular: `used` bytes from `start` on, wrapping at the end, are
    /// the kept lines' texts, oldest first. It doubles as needed up to
    /// `max_bytes`, so a quiet service holds little.
    buf: Vec<u8>,
    start: usize,
    used: usize,
    lines: VecDeque<Meta>,
    max_lines: usize,
    max_bytes: usize,
}

impl Ring {
    pub fn new(max_lines: usize, max_bytes: usize) -> Ring {
        Ring {
            buf: Vec::new(),
            start: 0,
            used: 0,
            lines: VecDeque::new(),
            max_lines,
            // The length of a line is kept in a u32.
            max_bytes: max_bytes.min(u32::MAX as usize),
        }
    }

    /// Remembers a line, first dropping the oldest ones that would break
    /// either bound. A line larger than the byte bound is not kept.
    pub fn push_line(&mut self, time: SystemTime, stream: Stream, text: &[u8], continued: bool) {
        let n = text.len();
        if self.max_lines == 0 || n > self.max_bytes {
            return;
        }
        while self.lines.len() >= self.max_lines || self.used + n > self.max_bytes {
            let Some(old) = self.lines.pop_front() else {
                break;
            };
            self.used -= old.len as usize;
            self.start = match self.used {
                0 => 0,
                _ => self.wrap(self.start + old.len as usize),
            };
        }
        if self.used + n > self.buf.len() {
            self.grow(self.used + n);
        }
        if n > 0 {
            let at = self.wrap(self.start + self.used);
            let first = n.min(self.buf.len() - at);
            let (head, tail) = text.split_at(first);
            if let Some(to) = self.buf.get_mut(at..at + first) {
                crate::bytes::copy(to, head);
            }
            if let Some(to) = self.buf.get_mut(..tail.len()) {
                crate::bytes::copy(to, tail);
            }
            self.used += n;
        }
        self.lines.push_back(Meta {
            time,
            len: n as u32,
            stream,
            continued,
        });
    }

    /// A position in the buffer, counted on from its start where it runs
    /// past the end. Positions are below twice its length, so this is
    /// `% len` without the division, which was half of push_line's time.
    fn wrap(&self, at: usize) -> usize {
        match at.checked_sub(self.buf.len()) {
            Some(over) => over,
            None => at,
        }
    }

    /// Makes room for `need` bytes (at most `max_bytes`), oldest first
    /// from the start of a new buffer.
    fn grow(&mut self, need: usize) {
        let cap = need
            .max(2 * self.buf.len())
            .max(MIN_BUFFER)
            .min(self.max_bytes);
        let mut grown = Vec::with_capacity(cap);
        let (a, b) = self.text(0, self.used);
        grown.extend_from_slice(a);
        grown.extend_from_slice(b);
        grown.resize(cap, 0);
        self.buf = grown;
        self.start = 0;
    }

    /// The `len` bytes `offset` bytes after the oldest kept one: one piece,
    /// or two where they wrap.
    fn text(&self, offset: usize, len: usize) -> (&[u8], &[u8]) {
        if len == 0 {
            return (&[], &[]);
        }
        let cap = self.buf.len();
        let at = self.wrap(self.start + offset);
        let (wrapped, rest) = self.buf.split_at(at.min(cap));
        match rest.get(..len) {
            Some(whole) => (whole, &[]),
            None => (rest, wrapped.get(..len - rest.len()).unwrap_or_default()),
        }
    }

    /// The same lines under new limits: the newest that fit are kept.
    pub fn resized(self, max_lines: usize, max_bytes: usize) -> Ring {
        let mut ring = Ring::new(max_lines, max_bytes);
        for e in self.last(usize::MAX) {
            ring.push_line(e.time, e.stream, &e.text, e.continued);
        }
        ring
    }

    /// The last `n` lines, oldest first.
    pub fn last(&self, n: usize) -> impl Iterator<Item = Entry> + '_ {
        let skip = self.lines.len().saturating_sub(n);
        let shown: usize = self.lines.iter().skip(skip).map(|m| m.len as usize).sum();
        let mut offset = self.used - shown;
        self.lines.iter().skip(skip).map(move |m| {
            let (a, b) = self.text(offset, m.len as usize);
            offset += m.len as usize;
            Entry {
                time: m.time,
                stream: m.stream,
                text: [a, b].concat(),
                continued: m.continued,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(r: &Ring) -> Vec<Vec<u8>> {
        r.last(usize::MAX).map(|e| e.text).collect()
    }

    fn push(r: &mut Ring, text: &str) {
        r.push_line(
            SystemTime::UNIX_EPOCH,
            Stream::Stdout,
            text.as_bytes(),
            false,
        );
    }

    #[test]
    fn bounded_by_lines_and_bytes() {
        let mut r = Ring::new(3, 10);
        for t in ["a", "b", "c", "d"] {
            push(&mut r, t);
        }
        assert_eq!(texts(&r), [b"b", b"c", b"d"]);
        push(&mut r, "123456789");
        assert_eq!(
            texts(&r),
            [&b"d"[..], b"123456789"],
            "bytes bound drops the oldest"
        );
        assert_eq!(r.last(1).count(), 1);
        push(&mut r, "this is longer than ten");
        assert_eq!(
            r.last(usize::MAX).count(),
            2,
            "a line larger than the ring is not kept"
        );
    }

    /// What the ring must keep, the plain way: whole entries in a deque.
    fn model(entries: &mut VecDeque<Entry>, lines: usize, bytes: usize, e: Entry) {
        if lines == 0 || e.text.len() > bytes {
            return;
        }
        entries.push_back(e);
        while entries.len() > lines || entries.iter().map(|e| e.text.len()).sum::<usize>() > bytes {
            entries.pop_front();
        }
    }

    #[test]
    fn keeps_what_whole_entries_would_across_wraps_and_growth() {
        // Lines of many lengths, empty and long ones among them, under
        // both limits; the byte bound is small enough to wrap often.
        let texts: Vec<Vec<u8>> = (0..600)
            .map(|i: usize| {
                let len = if i.is_multiple_of(37) {
                    900
                } else {
                    (i * 7) % 23
                };
                (0..len).map(|j| (i + j) as u8).collect()
            })
            .collect();
        for (lines, bytes) in [
            (5, 1000),
            (50, 300),
            (1, 10),
            (0, 10),
            (1000, 5000),
            (7, 4097),
        ] {
            let mut ring = Ring::new(lines, bytes);
            let mut want = VecDeque::new();
            for (i, t) in texts.iter().enumerate() {
                let e = Entry {
                    time: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(i as u64),
                    stream: if i % 2 == 0 {
                        Stream::Stdout
                    } else {
                        Stream::Stderr
                    },
                    text: t.clone(),
                    continued: i % 3 == 0,
                };
                ring.push_line(e.time, e.stream, &e.text, e.continued);
                model(&mut want, lines, bytes, e);
                assert!(
                    ring.last(usize::MAX).eq(want.iter().cloned()),
                    "{lines} {bytes} at {i}"
                );
                assert!(
                    ring.buf.len() <= bytes,
                    "the buffer stays within the byte bound"
                );
                let tail = want.len().saturating_sub(3);
                assert!(ring.last(3).eq(want.iter().skip(tail).cloned()));
            }
        }
    }

    #[test]
    fn resized_keeps_the_newest_that_fit() {
        let mut r = Ring::new(10, 100);
        for t in ["one", "two", "three", "four"] {
            push(&mut r, t);
        }
        let r = r.resized(2, 100);
        assert_eq!(texts(&r), [&b"three"[..], b"four"]);
        let r = r.resized(10, 4);
        assert_eq!(texts(&r), [b"four"]);
    }
}

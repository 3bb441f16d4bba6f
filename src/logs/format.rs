//! How a line looks on the container's stdout/stderr and in log files.

use super::{Format, Stream};
use crate::bytes::append;

/// What marks a piece of a cut line that continues in the next one.
pub const CONTINUED: &str = " [continued]";

/// One line to render.
pub struct Record<'a> {
    pub service: &'a str,
    pub stream: Stream,
    /// RFC 3339, when timestamps are on (always present for JSON).
    pub time: Option<&'a str>,
    pub text: &'a [u8],
    pub continued: bool,
}

/// Appends `rec` as one line to `out`. `width` pads names in `prefix`.
pub fn render(out: &mut Vec<u8>, format: Format, width: usize, rec: &Record<'_>) {
    match format {
        Format::Prefix => {
            if let Some(t) = rec.time {
                append(out, t.as_bytes());
                out.push(b' ');
            }
            append(out, rec.service.as_bytes());
            out.resize(out.len() + width.saturating_sub(rec.service.len()), b' ');
            out.extend_from_slice(b" | ");
            plain_tail(out, rec);
        }
        // `inherit` never reaches here (no pipe); render it raw anyway.
        Format::Raw | Format::Inherit => {
            if let Some(t) = rec.time {
                append(out, t.as_bytes());
                out.push(b' ');
            }
            plain_tail(out, rec);
        }
        Format::Json => {
            out.extend_from_slice(b"{\"time\":\"");
            out.extend_from_slice(rec.time.unwrap_or("").as_bytes());
            out.extend_from_slice(b"\",\"service\":");
            json_string(out, rec.service.as_bytes());
            out.extend_from_slice(match rec.stream {
                Stream::Stdout => b",\"stream\":\"stdout\",\"line\":",
                Stream::Stderr => b",\"stream\":\"stderr\",\"line\":",
            });
            json_string(out, rec.text);
            if rec.continued {
                out.extend_from_slice(b",\"continued\":true");
            }
            out.extend_from_slice(b"}\n");
        }
    }
}

fn plain_tail(out: &mut Vec<u8>, rec: &Record<'_>) {
    append(out, rec.text);
    if rec.continued {
        out.extend_from_slice(CONTINUED.as_bytes());
    }
    out.push(b'\n');
}

/// A JSON string of `bytes`: valid UTF-8 as is (escaped per RFC 8259),
/// each invalid byte as the six characters `\u00XX`-style text `\\xNN`, so
/// nothing is dropped and the object stays valid JSON.
pub fn json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 => {
                    out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
                }
                c => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        for b in chunk.invalid() {
            out.extend_from_slice(format!("\\\\x{b:02x}").as_bytes());
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(text: &'a [u8], time: Option<&'a str>, continued: bool) -> Record<'a> {
        Record {
            service: "db",
            stream: Stream::Stderr,
            time,
            text,
            continued,
        }
    }

    fn one(format: Format, r: &Record<'_>) -> String {
        let mut out = Vec::new();
        render(&mut out, format, 5, r);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn prefix_and_raw_are_byte_exact() {
        assert_eq!(
            one(Format::Prefix, &rec(b"ready", None, false)),
            "db    | ready\n"
        );
        assert_eq!(
            one(
                Format::Prefix,
                &rec(b"ready", Some("2026-11-22T06:00:00.000Z"), false)
            ),
            "2026-11-22T06:00:00.000Z db    | ready\n"
        );
        assert_eq!(
            one(Format::Raw, &rec(b"ready", None, true)),
            "ready [continued]\n"
        );
    }

    #[test]
    fn json_is_one_valid_object_and_keeps_invalid_bytes() {
        let line = one(
            Format::Json,
            &rec(
                b"say \"hi\"\t\\ \x01 caf\xc3\xa9 \xff\xfe",
                Some("2026-11-22T06:00:00.000Z"),
                true,
            ),
        );
        assert_eq!(
            line,
            "{\"time\":\"2026-11-22T06:00:00.000Z\",\"service\":\"db\",\"stream\":\"stderr\",\
             \"line\":\"say \\\"hi\\\"\\t\\\\ \\u0001 café \\\\xff\\\\xfe\",\"continued\":true}\n"
        );
        let v = crate::json::parse(&line).unwrap();
        let text: String = v.fields().unwrap().get("line").unwrap();
        assert_eq!(text, "say \"hi\"\t\\ \u{1} café \\xff\\xfe");
    }
}

//! JSON as corral writes and reads it: the control protocol (`proto.rs`),
//! svctl's `--json` output, the steps handed to the prepare helper and
//! `corral schema`.
//!
//! Writing appends to a `Vec<u8>` ([`ToJson`], [`Object`]). Reading walks
//! the text ([`Reader`]): a caller that wants only some keys takes them as
//! they come and skips the rest unbuilt (svctl's status table); otherwise
//! the text becomes a tree whose strings borrow from it where they have no
//! escapes ([`parse`], [`Json`]), and typed values come out of the tree
//! ([`FromJson`], [`Fields`]). [`json_object!`] writes both directions for
//! a struct whose fields are named as its keys.
//!
//! Why not serde's derive: its generated code for the protocol's types,
//! instantiated per type, deserializer and buffering strategy (the tagged
//! enums were read twice, once into a buffer), was about 230 KiB of the
//! binary that every `svctl` call and PID 1 map. The protocol is small and
//! ours on both ends.
//!
//! The parser is for input we may not trust (a client's request): it
//! never panics, limits nesting, and reports where the text went wrong.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::bytes::append;

// ---------------------------------------------------------------- writing

/// A value that writes itself as JSON.
pub trait ToJson {
    fn write_json(&self, out: &mut Vec<u8>);
}

/// `v` as JSON text.
pub fn to_vec<T: ToJson + ?Sized>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    v.write_json(&mut out);
    out
}

/// `v` as JSON text.
pub fn to_string<T: ToJson + ?Sized>(v: &T) -> String {
    // Only whole UTF-8 strings and ASCII are ever written.
    String::from_utf8(to_vec(v)).unwrap_or_default()
}

/// `s` as a JSON string: quotes, backslashes and control characters
/// escaped, everything else as it is (the escapes serde_json writes).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let mut rest = s.as_bytes();
    loop {
        // Up to the next byte to escape, found eight bytes at a time.
        let plain = plain_run(rest);
        let (run, tail) = rest.split_at(plain.min(rest.len()));
        append(out, run);
        let Some((&b, tail)) = tail.split_first() else {
            break;
        };
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => b"",
        };
        if short.is_empty() {
            let hex = |n: u8| b"0123456789abcdef".get(usize::from(n)).copied();
            append(out, b"\\u00");
            out.extend([hex(b >> 4), hex(b & 15)].into_iter().flatten());
        } else {
            append(out, short);
        }
        rest = tail;
    }
    out.push(b'"');
}

/// An unsigned integer in decimal.
fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    append(out, digits.get(at..).unwrap_or_default());
}

fn write_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    write_u64(out, n.unsigned_abs());
}

impl ToJson for str {
    fn write_json(&self, out: &mut Vec<u8>) {
        write_str(out, self);
    }
}

impl ToJson for String {
    fn write_json(&self, out: &mut Vec<u8>) {
        write_str(out, self);
    }
}

impl ToJson for Cow<'static, str> {
    fn write_json(&self, out: &mut Vec<u8>) {
        write_str(out, self);
    }
}

impl ToJson for bool {
    fn write_json(&self, out: &mut Vec<u8>) {
        append(out, if *self { b"true" } else { b"false" });
    }
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl ToJson for $t {
            fn write_json(&self, out: &mut Vec<u8>) {
                write_u64(out, *self as u64);
            }
        }
    )*};
}
unsigned!(u32, u64, usize);

macro_rules! signed {
    ($($t:ty),*) => {$(
        impl ToJson for $t {
            fn write_json(&self, out: &mut Vec<u8>) {
                write_i64(out, i64::from(*self));
            }
        }
    )*};
}
signed!(i32, i64);

impl ToJson for f64 {
    fn write_json(&self, out: &mut Vec<u8>) {
        if self.is_finite() {
            let text = if self.fract() == 0.0 && self.abs() < 1e15 {
                format!("{self:.1}")
            } else {
                format!("{self}")
            };
            append(out, text.as_bytes());
        } else {
            append(out, b"null");
        }
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Some(v) => v.write_json(out),
            None => append(out, b"null"),
        }
    }
}

impl<T: ToJson + ?Sized> ToJson for Box<T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        (**self).write_json(out);
    }
}

impl<T: ToJson> ToJson for [T] {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            v.write_json(out);
        }
        out.push(b']');
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        self.as_slice().write_json(out);
    }
}

impl<T: ToJson> ToJson for BTreeMap<String, T> {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, k);
            out.push(b':');
            v.write_json(out);
        }
        out.push(b'}');
    }
}

/// Writes an object a key at a time; `end` closes it.
pub struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Object<'a> {
        out.push(b'{');
        Object { out, first: true }
    }

    /// `"key":value`. Keys are the protocol's own names: nothing to escape.
    pub fn field<T: ToJson + ?Sized>(&mut self, key: &str, value: &T) -> &mut Self {
        self.separate();
        self.out.push(b'"');
        append(self.out, key.as_bytes());
        append(self.out, b"\":");
        value.write_json(self.out);
        self
    }

    /// `field` with the key already quoted and followed by its colon
    /// (`"\"name\":"`, made by `json_object!` at compile time): one copy
    /// per key instead of three, for the 18 keys of each service a status
    /// answer writes.
    pub fn quoted_field<T: ToJson + ?Sized>(&mut self, quoted: &str, value: &T) -> &mut Self {
        self.separate();
        append(self.out, quoted.as_bytes());
        value.write_json(self.out);
        self
    }

    /// `quoted_field` when there is a value.
    pub fn quoted_some<T: ToJson>(&mut self, quoted: &str, value: &Option<T>) -> &mut Self {
        if let Some(v) = value {
            self.quoted_field(quoted, v);
        }
        self
    }

    fn separate(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// The key only when there is a value.
    pub fn some<T: ToJson>(&mut self, key: &str, value: &Option<T>) -> &mut Self {
        if let Some(v) = value {
            self.field(key, v);
        }
        self
    }

    pub fn end(&mut self) {
        self.out.push(b'}');
    }
}

/// A struct that is a JSON object: it writes its keys into one being
/// written, and reads them from one (so an enum can tag it, as `Response`
/// does, in the same object).
pub trait JsonObject: Sized {
    fn write_fields(&self, o: &mut Object<'_>);
    fn from_fields(f: &Fields<'_, '_>) -> Result<Self, String>;
}

/// Writes `ToJson` and `FromJson` for a `JsonObject` struct whose fields
/// are its keys, in order; `field: omit_none` leaves a `None` out instead
/// of writing `null`. A key missing when read takes the field type's
/// `FromJson::missing`.
macro_rules! json_object {
    ($ty:ident { $($field:ident $(: $mode:ident)?),* $(,)? }) => {
        impl $crate::json::JsonObject for $ty {
            fn write_fields(&self, o: &mut $crate::json::Object<'_>) {
                $( $crate::json::put_field!(o, concat!("\"", stringify!($field), "\":"), &self.$field $(, $mode)?); )*
            }
            fn from_fields(f: &$crate::json::Fields<'_, '_>) -> Result<Self, String> {
                Ok($ty { $( $field: f.get(stringify!($field))?, )* })
            }
        }
        $crate::json::object_impls!($ty);
    };
}
pub(crate) use json_object;

/// `ToJson` and `FromJson` of a `JsonObject`.
macro_rules! object_impls {
    ($ty:ty) => {
        impl $crate::json::ToJson for $ty {
            fn write_json(&self, out: &mut Vec<u8>) {
                let mut o = $crate::json::Object::new(out);
                $crate::json::JsonObject::write_fields(self, &mut o);
                o.end();
            }
        }
        impl $crate::json::FromJson for $ty {
            fn from_json(v: &$crate::json::Json<'_>) -> Result<Self, String> {
                <$ty as $crate::json::JsonObject>::from_fields(&v.fields()?)
            }
        }
    };
}
pub(crate) use object_impls;

macro_rules! put_field {
    ($o:ident, $quoted:expr, $value:expr) => {
        $o.quoted_field($quoted, $value);
    };
    ($o:ident, $quoted:expr, $value:expr, omit_none) => {
        $o.quoted_some($quoted, $value);
    };
}
pub(crate) use put_field;

impl ToJson for Json<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        write_tree(out, self, None);
    }
}

/// `v` with each key and item on a line of its own, indented by two
/// spaces a level (for people: `corral schema`).
pub fn to_string_pretty(v: &Json<'_>) -> String {
    let mut out = Vec::new();
    write_tree(&mut out, v, Some(0));
    String::from_utf8(out).unwrap_or_default()
}

/// Compact, or pretty at an indentation level.
fn write_tree(out: &mut Vec<u8>, v: &Json<'_>, level: Option<usize>) {
    let newline = |out: &mut Vec<u8>, level: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', 2 * level));
    };
    let inner = level.map(|l| l + 1);
    match v {
        Json::Null => append(out, b"null"),
        Json::Bool(b) => b.write_json(out),
        Json::Number(n) => append(out, n.as_bytes()),
        Json::String(s) => write_str(out, s),
        Json::Array(items) if items.is_empty() => append(out, b"[]"),
        Json::Object(pairs) if pairs.is_empty() => append(out, b"{}"),
        Json::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if let Some(l) = inner {
                    newline(out, l);
                }
                write_tree(out, item, inner);
            }
            if let Some(l) = level {
                newline(out, l);
            }
            out.push(b']');
        }
        Json::Object(pairs) => {
            out.push(b'{');
            for (i, (k, item)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if let Some(l) = inner {
                    newline(out, l);
                }
                write_str(out, k);
                append(out, if level.is_some() { b": " } else { b":" });
                write_tree(out, item, inner);
            }
            if let Some(l) = level {
                newline(out, l);
            }
            out.push(b'}');
        }
    }
}

// ---------------------------------------------------------------- reading

/// A parsed JSON value (or one built to be written, as `corral schema`
/// does). Numbers stay text until a type asks for them.
#[derive(Debug, Clone, PartialEq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Number(Cow<'a, str>),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// The keys of an object.
    pub fn fields(&self) -> Result<Fields<'_, 'a>, String> {
        match self {
            Json::Object(pairs) => Ok(Fields(pairs)),
            other => Err(format!("expected an object, not {}", other.kind())),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// What it is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

/// The keys of one object, to take typed values from. Unknown keys are
/// ignored; of a key given twice the first counts.
pub struct Fields<'v, 'a>(&'v [(Cow<'a, str>, Json<'a>)]);

impl<'v, 'a> Fields<'v, 'a> {
    /// The value of `key`, if it is there.
    pub fn value(&self, key: &str) -> Option<&'v Json<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `key` as a `T`; a missing key is what `T::missing` says.
    pub fn get<T: FromJson>(&self, key: &str) -> Result<T, String> {
        match self.value(key) {
            Some(v) => T::from_json(v).map_err(|e| format!("`{key}`: {e}")),
            None => T::missing(key),
        }
    }
}

/// A value read from a parsed tree.
pub trait FromJson: Sized {
    fn from_json(v: &Json<'_>) -> Result<Self, String>;

    /// What a missing key gives: an error, but for the types with an
    /// obvious nothing (`None`, an empty list, `false`).
    fn missing(key: &str) -> Result<Self, String> {
        Err(format!("missing field `{key}`"))
    }
}

/// Parses one whole JSON text (white space around it allowed).
pub fn from_str<T: FromJson>(text: &str) -> Result<T, String> {
    T::from_json(&parse(text)?)
}

impl FromJson for String {
    fn from_json(v: &Json<'_>) -> Result<Self, String> {
        match v {
            Json::String(s) => Ok(s.to_string()),
            other => Err(format!("expected a string, not {}", other.kind())),
        }
    }
}

/// Read, always owned: the type of a word the writer has as a constant.
impl FromJson for Cow<'static, str> {
    fn from_json(v: &Json<'_>) -> Result<Self, String> {
        String::from_json(v).map(Cow::Owned)
    }
}

impl FromJson for bool {
    fn from_json(v: &Json<'_>) -> Result<Self, String> {
        match v {
            Json::Bool(b) => Ok(*b),
            other => Err(format!("expected true or false, not {}", other.kind())),
        }
    }

    fn missing(_: &str) -> Result<Self, String> {
        Ok(false)
    }
}

macro_rules! integer {
    ($($t:ty),*) => {$(
        impl FromJson for $t {
            fn from_json(v: &Json<'_>) -> Result<Self, String> {
                match v {
                    Json::Number(n) => n
                        .parse()
                        .map_err(|_| format!("{n} is not a {}", stringify!($t))),
                    other => Err(format!("expected a number, not {}", other.kind())),
                }
            }
        }
    )*};
}
integer!(u32, u64, usize, i32, i64);

impl<T: FromJson> FromJson for Option<T> {
    fn from_json(v: &Json<'_>) -> Result<Self, String> {
        match v {
            Json::Null => Ok(None),
            v => T::from_json(v).map(Some),
        }
    }

    fn missing(_: &str) -> Result<Self, String> {
        Ok(None)
    }
}

impl<T: FromJson> FromJson for Box<T> {
    fn from_json(v: &Json<'_>) -> Result<Self, String> {
        T::from_json(v).map(Box::new)
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(v: &Json<'_>) -> Result<Self, String> {
        match v {
            Json::Array(items) => items.iter().map(T::from_json).collect(),
            other => Err(format!("expected an array, not {}", other.kind())),
        }
    }

    fn missing(_: &str) -> Result<Self, String> {
        Ok(Vec::new())
    }
}

impl<T: FromJson> FromJson for BTreeMap<String, T> {
    fn from_json(v: &Json<'_>) -> Result<Self, String> {
        match v {
            Json::Object(pairs) => pairs
                .iter()
                .map(|(k, v)| Ok((k.to_string(), T::from_json(v)?)))
                .collect(),
            other => Err(format!("expected an object, not {}", other.kind())),
        }
    }

    fn missing(_: &str) -> Result<Self, String> {
        Ok(BTreeMap::new())
    }
}

/// Deeper than this is not a request or an answer of ours.
const MAX_DEPTH: usize = 32;

/// Parses one whole JSON text (white space around it allowed).
pub fn parse(text: &str) -> Result<Json<'_>, String> {
    let mut r = Reader::new(text);
    let v = r.value()?;
    r.end()?;
    Ok(v)
}

/// Reads JSON text front to back. `value` makes a tree; `object`,
/// `array`, `text` and `skip` let a reader that wants only some keys take
/// them as they come, without building the rest (svctl's status table).
pub struct Reader<'a> {
    text: &'a str,
    at: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Reader<'a> {
        Reader {
            text,
            at: 0,
            depth: 0,
        }
    }

    /// Nothing but white space is left.
    pub fn end(&mut self) -> Result<(), String> {
        self.space();
        if self.at < self.text.len() {
            return Err(self.error("trailing characters"));
        }
        Ok(())
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    // The error paths are out of line (and cold): with their formatting
    // inside, expect, next and string were too big to inline, and their
    // calls cost more than their work (a third of svctl's parse of 100
    // services).
    #[cold]
    #[inline(never)]
    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.at)
    }

    #[cold]
    #[inline(never)]
    fn expected(&self, what: &[u8]) -> String {
        let what: Vec<String> = what.iter().map(|&b| format!("`{}`", b as char)).collect();
        self.error(&format!("expected {}", what.join(" or ")))
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.space();
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.expected(&[byte]))
        }
    }

    fn word(&mut self, word: &str) -> Result<(), String> {
        if self.text.as_bytes().get(self.at..self.at + word.len()) == Some(word.as_bytes()) {
            self.at += word.len();
            Ok(())
        } else {
            Err(self.error("expected a value"))
        }
    }

    /// Past `open`, one level deeper.
    fn enter(&mut self, open: u8) -> Result<(), String> {
        self.expect(open)?;
        if self.depth >= MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.depth += 1;
        Ok(())
    }

    /// Past `,` (true) or the closing `close` (false, one level up).
    #[inline]
    fn next(&mut self, close: u8) -> Result<bool, String> {
        self.space();
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.at += 1;
                self.depth -= 1;
                Ok(false)
            }
            _ => Err(self.expected(&[b',', close])),
        }
    }

    /// Calls `each` with every key of the object here, in order; `each`
    /// reads (or skips) its value.
    pub fn object(
        &mut self,
        mut each: impl FnMut(&mut Reader<'a>, Cow<'a, str>) -> Result<(), String>,
    ) -> Result<(), String> {
        self.enter(b'{')?;
        self.space();
        if self.peek() == Some(b'}') {
            return self.next(b'}').map(drop);
        }
        loop {
            self.space();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key"));
            }
            let key = self.string()?;
            self.expect(b':')?;
            each(self, key)?;
            if !self.next(b'}')? {
                return Ok(());
            }
        }
    }

    /// Calls `each` for every item of the array here; `each` reads it.
    pub fn array(
        &mut self,
        mut each: impl FnMut(&mut Reader<'a>) -> Result<(), String>,
    ) -> Result<(), String> {
        self.enter(b'[')?;
        self.space();
        if self.peek() == Some(b']') {
            return self.next(b']').map(drop);
        }
        loop {
            each(self)?;
            if !self.next(b']')? {
                return Ok(());
            }
        }
    }

    /// The value here, as a tree.
    pub fn value(&mut self) -> Result<Json<'a>, String> {
        self.space();
        match self.peek() {
            Some(b'{') => {
                let mut pairs = Vec::new();
                self.object(|r, key| {
                    pairs.push((key, r.value()?));
                    Ok(())
                })?;
                Ok(Json::Object(pairs))
            }
            Some(b'[') => {
                let mut items = Vec::new();
                self.array(|r| {
                    items.push(r.value()?);
                    Ok(())
                })?;
                Ok(Json::Array(items))
            }
            Some(b'"') => self.string().map(Json::String),
            Some(b't') => self.word("true").map(|()| Json::Bool(true)),
            Some(b'f') => self.word("false").map(|()| Json::Bool(false)),
            Some(b'n') => self.word("null").map(|()| Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number().map(Json::Number),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end of input")),
        }
    }

    /// Past the value here, building nothing of it.
    pub fn skip(&mut self) -> Result<(), String> {
        self.space();
        match self.peek() {
            Some(b'{') => self.object(|r, _| r.skip()),
            Some(b'[') => self.array(|r| r.skip()),
            _ => self.value().map(drop),
        }
    }

    /// A string or null: the value of a key the reader wants as text,
    /// borrowed from the text where it has no escapes.
    pub fn text(&mut self) -> Result<Option<Cow<'a, str>>, String> {
        self.space();
        match self.peek() {
            Some(b'n') => self.word("null").map(|()| None),
            Some(b'"') => self.string().map(Some),
            _ => Err(self.error("expected a string")),
        }
    }

    /// The value here as a `T`.
    pub fn get<T: FromJson>(&mut self) -> Result<T, String> {
        T::from_json(&self.value()?)
    }

    fn number(&mut self) -> Result<Cow<'a, str>, String> {
        let start = self.at;
        let digits = |r: &mut Reader<'a>| {
            let from = r.at;
            while let Some(b'0'..=b'9') = r.peek() {
                r.at += 1;
            }
            r.at > from
        };
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        if !digits(self) {
            return Err(self.error("expected digits"));
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !digits(self) {
                return Err(self.error("expected digits"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if !digits(self) {
                return Err(self.error("expected digits"));
            }
        }
        Ok(Cow::Borrowed(
            self.text.get(start..self.at).unwrap_or_default(),
        ))
    }

    /// A string at the opening quote: borrowed from the text unless it has
    /// escapes.
    #[inline]
    fn string(&mut self) -> Result<Cow<'a, str>, String> {
        self.at += 1;
        let start = self.at;
        // The common case: no escape before the closing quote.
        self.at += plain_run(self.text.as_bytes().get(self.at..).unwrap_or_default());
        if self.peek() == Some(b'"') {
            let s = self.text.get(start..self.at).unwrap_or_default();
            self.at += 1;
            return Ok(Cow::Borrowed(s));
        }
        self.escaped(start)
    }

    /// The rest of a string from `start` that has an escape (or a control
    /// character, or no end) at `self.at`: copied, unescaped.
    #[inline(never)]
    fn escaped(&mut self, start: usize) -> Result<Cow<'a, str>, String> {
        let mut out = String::from(self.text.get(start..self.at).unwrap_or_default());
        loop {
            let rest = self.text.get(self.at..).unwrap_or_default();
            // Stops only at ASCII bytes: `plain` is a char boundary.
            let plain = plain_run(rest.as_bytes());
            out.push_str(rest.get(..plain).unwrap_or_default());
            self.at += plain;
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.at += 1;
                    let c = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.at += 1;
                            let c = self.unicode()?;
                            out.push(c);
                            continue;
                        }
                        _ => return Err(self.error("bad escape")),
                    };
                    self.at += 1;
                    out.push(c);
                }
                Some(_) => return Err(self.error("control character in a string")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    /// The four hex digits after `\u` (and a low surrogate's after a high
    /// one).
    fn unicode(&mut self) -> Result<char, String> {
        let hex4 = |p: &mut Reader<'a>| {
            let digits = p
                .text
                .get(p.at..p.at + 4)
                .ok_or_else(|| p.error("bad \\u escape"))?;
            let n = u32::from_str_radix(digits, 16).map_err(|_| p.error("bad \\u escape"))?;
            p.at += 4;
            Ok::<u32, String>(n)
        };
        let first = hex4(self)?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if self.text.get(self.at..self.at + 2) != Some("\\u") {
                return Err(self.error("lone surrogate"));
            }
            self.at += 2;
            let second = hex4(self)?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.error("lone surrogate"));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| self.error("lone surrogate"))
    }
}

/// How many bytes from the start are neither `"`, `\\` nor a control
/// character: the run a string copies or borrows as it is. Eight bytes at
/// a time (the zero-byte test of a word: a byte's borrow can only mark
/// bytes after the first hit, so the lowest mark is the first hit).
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut at = 0;
    while let Some(word) = bytes.get(at..).and_then(|b| b.first_chunk::<8>()) {
        let x = u64::from_le_bytes(*word);
        let hit = zero_byte(x ^ (ONES * u64::from(b'"')))
            | zero_byte(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if hit != 0 {
            return at + (hit.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + bytes
        .get(at..)
        .unwrap_or_default()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .unwrap_or(bytes.len().saturating_sub(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_json_wants() {
        let s = "a\"b\\c\nd\te\u{1}f\u{7f}é😀";
        assert_eq!(
            to_string(s),
            r#""a\"b\\c\nd\te\u0001f"#.to_string() + "\u{7f}é😀\""
        );
        let back: String = from_str(&to_string(s)).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn numbers_round_trip_at_their_limits() {
        for n in [0u64, 9, 10, 1234567890, u64::MAX] {
            assert_eq!(from_str::<u64>(&to_string(&n)).unwrap(), n);
        }
        for n in [i32::MIN, -1, 0, i32::MAX] {
            assert_eq!(from_str::<i32>(&to_string(&n)).unwrap(), n);
        }
        assert!(from_str::<u32>("-1").is_err());
        assert!(from_str::<u32>("1.5").is_err());
        assert!(from_str::<u64>("18446744073709551616").is_err());
        assert_eq!(to_string(&1.5f64), "1.5");
        assert_eq!(to_string(&2.0f64), "2.0");
    }

    #[test]
    fn escapes_and_surrogate_pairs_are_read() {
        let v = parse(r#"{"k":"\u00e9\ud83d\ude00\/\"x","plain":"yes"}"#).unwrap();
        let f = v.fields().unwrap();
        assert_eq!(f.get::<String>("k").unwrap(), "é😀/\"x");
        assert!(matches!(
            f.value("plain"),
            Some(Json::String(Cow::Borrowed("yes")))
        ));
        assert!(parse(r#""\ud83d""#).is_err());
        assert!(parse(r#""\ude00""#).is_err());
    }

    #[test]
    fn bad_text_is_an_error_never_a_panic() {
        for bad in [
            "",
            "{",
            "[1,",
            "{\"a\" 1}",
            "tru",
            "\"abc",
            "01x",
            "-",
            "1.",
            "1e",
            "{\"a\":1}x",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a\nb\"",
            "[1 2]",
            "{1:2}",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(10_000);
        assert!(parse(&deep).unwrap_err().contains("nested too deeply"));
        assert_eq!(
            parse(" [ 1 , {} , [] , null , true ] \n").unwrap().kind(),
            "an array"
        );
    }

    #[test]
    fn plain_runs_end_at_the_first_quote_backslash_or_control() {
        let naive = |b: &[u8]| {
            b.iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(b.len())
        };
        let alphabet = [
            b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xff, 0x00, b'!', b'#',
        ];
        for len in 0..20 {
            for stop in 0..len {
                for &special in &alphabet {
                    let mut text = vec![b'x'; len];
                    text[stop] = special;
                    if stop + 1 < len {
                        text[stop + 1] = b'"';
                    }
                    assert_eq!(plain_run(&text), naive(&text), "{text:?}");
                }
            }
        }
        assert_eq!(plain_run("é😀 ok".as_bytes()), "é😀 ok".len());
    }

    #[test]
    fn a_reader_takes_some_keys_and_skips_the_rest() {
        let text = r#"{"skip":{"a":[1,{"b":"\n"}],"c":null},"want":"yes","n":7,"s":"x\ty"}"#;
        let mut r = Reader::new(text);
        let (mut want, mut n, mut s) = (None, 0u32, None);
        r.object(|r, key| {
            match key.as_ref() {
                "want" => want = r.text()?,
                "n" => n = r.get()?,
                "s" => s = r.text()?,
                _ => r.skip()?,
            }
            Ok(())
        })
        .unwrap();
        r.end().unwrap();
        assert!(matches!(want, Some(Cow::Borrowed("yes"))));
        assert_eq!(n, 7);
        assert!(matches!(s.as_deref(), Some("x\ty")));
        let deep = format!("{{\"a\":{}}}", "[".repeat(100));
        assert!(
            Reader::new(&deep)
                .object(|r, _| r.skip())
                .unwrap_err()
                .contains("nested")
        );
    }

    /// Mutated answers never panic; whatever still parses writes out as
    /// text that parses to the same tree.
    #[test]
    fn mutated_text_never_panics_and_round_trips() {
        use crate::config::mutate::{Rng, mutate};
        let seed = to_vec(&crate::proto::Response::Ok {
            services: vec![crate::proto::ServiceStatus {
                name: "db \"x\" \u{1}é".into(),
                state: "running".into(),
                pid: Some(7),
                uptime_ms: Some(10),
                restarts: 1,
                last_exit: Some(crate::proto::LastExit::Signal(9)),
                enabled: true,
                user: None,
                schedule: None,
                note: Some("a\nb".into()),
                kind: "longrun".into(),
                ready: true,
                ready_ms: None,
                health: None,
                health_output: None,
                status_text: None,
                dropped_lines: 0,
                file_lost_lines: 0,
                actions: vec!["validate".into()],
            }],
            message: Some("-1.5e3".into()),
        });
        let mut rng = Rng(7);
        let mut parsed = 0;
        for _ in 0..20_000 {
            let mut data = seed.clone();
            mutate(&mut rng, &mut data);
            let Ok(text) = std::str::from_utf8(&data) else {
                continue;
            };
            let _ = from_str::<crate::proto::Response>(text);
            if let Ok(tree) = parse(text) {
                parsed += 1;
                let again = to_string(&tree);
                assert_eq!(parse(&again).as_ref(), Ok(&tree), "{text}");
            }
        }
        assert!(parsed > 100, "{parsed}");
    }

    #[test]
    fn missing_keys_take_the_types_nothing() {
        let v = parse(r#"{"n":3}"#).unwrap();
        let f = v.fields().unwrap();
        assert_eq!(f.get::<u32>("n").unwrap(), 3);
        assert_eq!(f.get::<Option<u32>>("x").unwrap(), None);
        assert_eq!(f.get::<Vec<u32>>("x").unwrap(), Vec::<u32>::new());
        assert!(!f.get::<bool>("x").unwrap());
        assert_eq!(f.get::<u32>("x").unwrap_err(), "missing field `x`");
        assert_eq!(
            f.get::<String>("n").unwrap_err(),
            "`n`: expected a string, not a number"
        );
    }
}

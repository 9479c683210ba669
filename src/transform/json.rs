//! A strict JSON reader into jaq's values, for a delivery's body in the worker (pure).
//!
//! jaq's own reader accepts more than JSON (comments, `NaN`, byte strings) and recurses
//! without a bound; checking with serde_json first and bounding the depth in a third pass
//! cost more than the run. This reader is one pass: strict RFC 8259 JSON in UTF-8, nested at
//! most a given depth, numbers kept as jaq keeps them (integers as integers, others as their
//! text), and strings without escapes as slices of the body rather than copies.

use bytes::Bytes;
use jaq_json::{Map, Num, Rc, Val};

/// The value of `text` when it is one JSON value (with surrounding whitespace) nested at most
/// `max_depth` deep; `None` otherwise.
pub fn parse(text: &Bytes, max_depth: usize) -> Option<Val> {
    // UTF-8 is checked string by string, not over the whole text first: outside strings the
    // grammar takes only ASCII, and most strings are ASCII, seen as such in the pass that
    // looks for control characters anyway.
    let mut reader = Reader {
        text,
        at: 0,
        max_depth,
    };
    reader.whitespace();
    let value = reader.value(0)?;
    reader.whitespace();
    (reader.at == text.len()).then_some(value)
}

struct Reader<'a> {
    text: &'a Bytes,
    at: usize,
    max_depth: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &[u8], value: Val) -> Option<Val> {
        let end = self.at.checked_add(word.len())?;
        (self.text.get(self.at..end)? == word).then(|| {
            self.at = end;
            value
        })
    }

    fn value(&mut self, depth: usize) -> Option<Val> {
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string(),
            b't' => self.literal(b"true", Val::Bool(true)),
            b'f' => self.literal(b"false", Val::Bool(false)),
            b'n' => self.literal(b"null", Val::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn object(&mut self, depth: usize) -> Option<Val> {
        if depth > self.max_depth {
            return None;
        }
        self.at += 1;
        let mut map = Map::default();
        self.whitespace();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(Val::obj(map));
        }
        loop {
            self.whitespace();
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            self.whitespace();
            if self.peek()? != b':' {
                return None;
            }
            self.at += 1;
            self.whitespace();
            let value = self.value(depth)?;
            map.insert(key, value);
            self.whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(Val::obj(map));
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: usize) -> Option<Val> {
        if depth > self.max_depth {
            return None;
        }
        self.at += 1;
        let mut items = Vec::new();
        self.whitespace();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(Val::Arr(Rc::new(items)));
        }
        loop {
            self.whitespace();
            items.push(self.value(depth)?);
            self.whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(Val::Arr(Rc::new(items)));
                }
                _ => return None,
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Option<Val> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
            integer = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            integer = false;
        }
        // ASCII by the grammar just read.
        let text = std::str::from_utf8(&self.text[start..self.at]).ok()?;
        let num = if integer {
            Num::from_str_radix(text, 10)?
        } else {
            // As jaq's reader keeps it: the text, so `10.50` is written back as `10.50`.
            Num::Dec(Rc::new(text.to_owned()))
        };
        Some(Val::Num(num))
    }

    fn hex4(&mut self) -> Option<u32> {
        let end = self.at.checked_add(4)?;
        let digits = std::str::from_utf8(self.text.get(self.at..end)?).ok()?;
        let code = u32::from_str_radix(digits, 16).ok()?;
        // from_str_radix takes a sign; JSON does not.
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.at = end;
        Some(code)
    }

    fn string(&mut self) -> Option<Val> {
        self.at += 1;
        let start = self.at;
        // The common case: no escape, a slice of the body. The end is found a word at a time
        // (memchr) and the run before it checked for control characters in one branch-free
        // pass: bodies are mostly long strings, and a byte-by-byte loop was a third of a run.
        let rest = self.text.get(start..)?;
        let stop = memchr::memchr2(b'"', b'\\', rest)?;
        if !plain_run(&rest[..stop]) {
            return None;
        }
        self.at = start + stop;
        if rest[stop] == b'"' {
            let s = self.text.slice(start..self.at);
            self.at += 1;
            return Some(Val::utf8_str(s));
        }
        let mut out = self.text[start..self.at].to_vec();
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    // Escapes give whole characters, so `out` is UTF-8 exactly when the raw
                    // bytes between them are.
                    std::str::from_utf8(&out).ok()?;
                    return Some(Val::utf8_str(out));
                }
                b'\\' => {
                    self.at += 1;
                    let escaped = self.peek()?;
                    self.at += 1;
                    let c = match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0x00..=0x1f => return None,
                b => {
                    out.push(b);
                    self.at += 1;
                }
            }
        }
    }

    /// The character of a `\u` escape (after the `u`), pairing surrogates; a lone surrogate
    /// is not JSON a strict reader accepts.
    fn unicode_escape(&mut self) -> Option<char> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.text.get(self.at..self.at + 2)? != b"\\u" {
                    return None;
                }
                self.at += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return None;
                }
                0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return None,
            code => code,
        };
        char::from_u32(code)
    }
}

/// True when `bytes`, a run of a string without escapes, holds no control character (below
/// U+0020, which JSON strings must escape) and is UTF-8. Control characters are looked for in
/// a fold (without an early exit the compiler checks 16 or 32 bytes a step: a fold that also
/// flagged non-ASCII bytes was not vectorised), and only a run that is not ASCII (std checks a
/// word at a time) is then checked as UTF-8.
fn plain_run(bytes: &[u8]) -> bool {
    let control = bytes.iter().fold(false, |found, &b| found | (b < 0x20));
    !control && (bytes.is_ascii() || std::str::from_utf8(bytes).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Option<Val> {
        parse(&Bytes::copy_from_slice(text.as_bytes()), 128)
    }

    #[test]
    fn reads_what_jaq_reads_for_json() {
        for text in [
            r#"{"a": [1, -2, 3.50, 1e3, -0.5E-2, 12345678901234567890123], "b": {"c": null}}"#,
            r#" [true, false, null, "", "x\"y\\z\/\b\f\n\r\t\u00e9\ud83d\ude00"] "#,
            r#""é 😀 plain""#,
            "0",
            "-0",
            r#"{"dup": 1, "dup": 2}"#,
            "[[[]], {}, [{}]]",
        ] {
            let expected = jaq_json::read::parse_single(text.as_bytes()).expect("jaq reads it");
            assert_eq!(read(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn numbers_keep_their_text() {
        let Some(Val::Arr(items)) = read("[10.50, 7]") else {
            panic!("an array")
        };
        assert_eq!(items[0].to_string(), "10.50");
        assert!(matches!(items[1], Val::Num(Num::Int(7))));
    }

    #[test]
    fn refuses_what_is_not_strict_json() {
        for text in [
            "",
            " ",
            "NaN",
            "Infinity",
            "+1",
            "01",
            "1.",
            ".5",
            "1e",
            "-",
            "# c\n1",
            "b\"x\"",
            "{a: 1}",
            "{'a': 1}",
            "[1,]",
            "{\"a\":1,}",
            "[1 2]",
            "1 2",
            "\"\\x41\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"\\u12g4\"",
            "\"\\u+123\"",
            "\"tab\there\"",
            "\"escaped\\n then a tab\there\"",
            "\"a long run before a line break: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n\"",
            "\"unterminated",
            "[",
            "{\"a\"",
            "{\"a\":}",
            "nul",
            "tru",
            "\u{feff}{}",
        ] {
            assert_eq!(read(text), None, "{text:?}");
        }
        // Text that is not UTF-8, in a string (plain, after an escape, split by one) or not.
        for text in [
            &b"\"\xff\""[..],
            b"\"caf\xc3\"",
            b"\"a\\n\xff\"",
            b"\"\xc3\\u00a9\"",
            b"[1, \xc3\xa9]",
            b"{\"a\": 1}\xc2\xa0",
        ] {
            assert_eq!(parse(&Bytes::from_static(text), 128), None, "{text:?}");
        }
        assert!(parse(&Bytes::from_static(b"\"caf\xc3\xa9\\n\xc3\xa9\""), 128).is_some());
    }

    #[test]
    fn depth_is_bounded() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(read(&nested(128)).is_some());
        assert!(read(&nested(129)).is_none());
        assert!(read(&format!("{}{}", "{\"a\":".repeat(129), "}".repeat(129))).is_none());
        // Far deeper input is refused without recursing into it.
        assert!(read(&nested(1_000_000)).is_none());
    }

    #[test]
    fn strings_without_escapes_share_the_body() {
        let body = Bytes::from_static(br#"{"key": "value"}"#);
        let Some(Val::Obj(map)) = parse(&body, 128) else {
            panic!("an object")
        };
        let Some(Val::TStr(value)) = map.get(&Val::utf8_str(&b"key"[..])) else {
            panic!("a string")
        };
        assert_eq!(value.as_ptr(), body[9..].as_ptr());
    }

    proptest::proptest! {
        /// Over a JSON-ish alphabet, accepted exactly when serde_json accepts, and then equal
        /// to what jaq's reader gives.
        #[test]
        fn agrees_with_serde_json_and_jaq(text in r#"[ \[\]{}",:0-9.eE+\-a-z\\]{0,24}"#) {
            let ours = read(&text);
            let serde_ok = serde_json::from_str::<serde_json::Value>(&text).is_ok();
            proptest::prop_assert_eq!(ours.is_some(), serde_ok, "{:?}", text);
            if let Some(value) = ours {
                let jaq = jaq_json::read::parse_single(text.as_bytes()).ok();
                proptest::prop_assert_eq!(Some(value), jaq, "{:?}", text);
            }
        }
    }
}

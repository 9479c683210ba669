//! The binary frames between a pool and its workers (pure encoding and decoding).
//!
//! Every frame is a little-endian `u32` length, then that many bytes of payload. Strings and
//! byte runs inside a payload are a `u32` length and the bytes; the body is whatever is left
//! at the end, so it is copied once into the frame and never escaped or parsed on the way
//! (the worker parses it, the gateway never does).
//!
//! Request: `max_output: u32`, program, event type (`u8` 0 or 1, then the string), header
//! count (`u32`) and each name and value, then the body.
//! Response: a tag `u8`: 0 drop; 1 send, then the event type, headers and body as in a
//! request; 2 error, then its kind (`u8`) and fields.

use bytes::Bytes;

use super::{Input, Output, TransformError};

/// Bytes a response may take beyond the output itself: framing and an error's message.
pub const FRAME_SLACK: usize = 64 * 1024;
/// A runtime error's message is cut to this many bytes (it may quote a whole value).
pub const MAX_ERROR_MESSAGE: usize = 4 * 1024;

/// A frame that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FrameError(pub String);

/// A decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    program: Bytes,
    pub input: Input,
    pub max_output: usize,
}

impl Request {
    /// The program text (checked to be UTF-8 when decoded).
    pub fn program(&self) -> &str {
        std::str::from_utf8(&self.program).unwrap_or_default()
    }
}

/// Appends one request frame to `out`.
pub fn encode_request(out: &mut Vec<u8>, program: &str, input: &Input, max_output: usize) {
    let start = begin(out);
    put_u32(out, saturate(max_output));
    put_bytes(out, program.as_bytes());
    put_send_fields(
        out,
        input.event_type.as_deref(),
        &input.headers,
        &input.body,
    );
    finish(out, start);
}

/// Decodes a request's payload (the frame without its length).
pub fn decode_request(payload: &Bytes) -> Result<Request, FrameError> {
    let mut r = Reader::shared(payload);
    let max_output = r.u32()? as usize;
    let program = r.bytes()?;
    std::str::from_utf8(&program).map_err(|_| FrameError("the program is not UTF-8".into()))?;
    let (event_type, headers, body) = r.send_fields()?;
    Ok(Request {
        program,
        input: Input {
            body,
            headers,
            event_type,
        },
        max_output,
    })
}

/// Appends one response frame to `out`.
pub fn encode_response(out: &mut Vec<u8>, result: &Result<Output, TransformError>) {
    let start = begin(out);
    match result {
        Ok(Output::Drop) => out.push(0),
        Ok(Output::Send {
            body,
            headers,
            event_type,
        }) => {
            out.push(1);
            put_send_fields(out, event_type.as_deref(), headers, body);
        }
        Err(error) => {
            out.push(2);
            put_error(out, error);
        }
    }
    finish(out, start);
}

/// Decodes a response's payload: the worker's answer for one run. The payload is borrowed
/// (the pool decodes answers in place in its read buffer): the body is its one copy.
pub fn decode_response(payload: &[u8]) -> Result<Result<Output, TransformError>, FrameError> {
    let mut r = Reader::borrowed(payload);
    match r.u8()? {
        0 => {
            r.end()?;
            Ok(Ok(Output::Drop))
        }
        1 => {
            let (event_type, headers, body) = r.send_fields()?;
            Ok(Ok(Output::Send {
                body,
                headers,
                event_type,
            }))
        }
        2 => {
            let error = r.error()?;
            r.end()?;
            Ok(Err(error))
        }
        tag => Err(FrameError(format!("unknown response tag {tag}"))),
    }
}

fn begin(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    start
}

fn finish(out: &mut [u8], start: usize) {
    let len = saturate(out.len() - start - 4);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, saturate(bytes.len()));
    out.extend_from_slice(bytes);
}

fn put_send_fields(
    out: &mut Vec<u8>,
    event_type: Option<&str>,
    headers: &[(String, String)],
    body: &[u8],
) {
    match event_type {
        Some(t) => {
            out.push(1);
            put_bytes(out, t.as_bytes());
        }
        None => out.push(0),
    }
    put_u32(out, saturate(headers.len()));
    for (name, value) in headers {
        put_bytes(out, name.as_bytes());
        put_bytes(out, value.as_bytes());
    }
    out.extend_from_slice(body);
}

fn put_error(out: &mut Vec<u8>, error: &TransformError) {
    let text = |out: &mut Vec<u8>, kind: u8, s: &str| {
        out.push(kind);
        let mut end = s.len().min(MAX_ERROR_MESSAGE);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        put_bytes(out, &s.as_bytes()[..end]);
    };
    match error {
        TransformError::Compile(s) => text(out, 1, s),
        TransformError::Runtime(s) => text(out, 2, s),
        TransformError::InvalidOutput(s) => text(out, 3, s),
        TransformError::OutputTooLarge { max } => {
            out.push(4);
            put_u32(out, saturate(*max));
        }
        TransformError::ProgramTooLong { len, max } => {
            out.push(5);
            put_u32(out, saturate(*len));
            put_u32(out, saturate(*max));
        }
        TransformError::NestedTooDeep { line, column, max } => {
            out.push(6);
            put_u32(out, saturate(*line));
            put_u32(out, saturate(*column));
            put_u32(out, saturate(*max));
        }
        TransformError::TooDeep { depth, max } => {
            out.push(7);
            put_u32(out, saturate(*depth));
            put_u32(out, saturate(*max));
        }
        // A worker gives none of the others; should it, the text keeps the message.
        other => text(out, 2, &other.to_string()),
    }
}

/// Reads a payload front to back; every read past the end is an error naming the field.
struct Reader<'a> {
    payload: &'a [u8],
    /// The payload as a `Bytes`, when it is one: byte runs are then slices of it, not copies.
    shared: Option<&'a Bytes>,
    at: usize,
}

impl<'a> Reader<'a> {
    fn shared(payload: &'a Bytes) -> Self {
        Self {
            payload,
            shared: Some(payload),
            at: 0,
        }
    }

    fn borrowed(payload: &'a [u8]) -> Self {
        Self {
            payload,
            shared: None,
            at: 0,
        }
    }

    fn slice(&self, range: std::ops::Range<usize>) -> Bytes {
        match self.shared {
            Some(shared) => shared.slice(range),
            None => Bytes::copy_from_slice(&self.payload[range]),
        }
    }

    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>, FrameError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.payload.len())
            .ok_or_else(|| {
                FrameError(format!(
                    "truncated: {n} bytes wanted at offset {} of {}",
                    self.at,
                    self.payload.len()
                ))
            })?;
        let range = self.at..end;
        self.at = end;
        Ok(range)
    }

    fn u8(&mut self) -> Result<u8, FrameError> {
        let range = self.take(1)?;
        Ok(self.payload[range.start])
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        let range = self.take(4)?;
        let mut b = [0; 4];
        b.copy_from_slice(&self.payload[range]);
        Ok(u32::from_le_bytes(b))
    }

    fn bytes(&mut self) -> Result<Bytes, FrameError> {
        let n = self.u32()? as usize;
        let range = self.take(n)?;
        Ok(self.slice(range))
    }

    /// A string field, copied straight out of the payload (no shared handle on it is made).
    fn string(&mut self, what: &str) -> Result<String, FrameError> {
        let n = self.u32()? as usize;
        let range = self.take(n)?;
        std::str::from_utf8(&self.payload[range])
            .map(str::to_owned)
            .map_err(|_| FrameError(format!("{what} is not UTF-8")))
    }

    fn rest(&mut self) -> Bytes {
        let rest = self.slice(self.at..self.payload.len());
        self.at = self.payload.len();
        rest
    }

    fn end(&self) -> Result<(), FrameError> {
        if self.at == self.payload.len() {
            Ok(())
        } else {
            Err(FrameError(format!(
                "{} bytes left over",
                self.payload.len() - self.at
            )))
        }
    }

    #[allow(clippy::type_complexity)]
    fn send_fields(
        &mut self,
    ) -> Result<(Option<String>, Vec<(String, String)>, Bytes), FrameError> {
        let event_type = match self.u8()? {
            0 => None,
            1 => Some(self.string("the event type")?),
            flag => return Err(FrameError(format!("event type flag {flag}"))),
        };
        let count = self.u32()? as usize;
        // Each header takes at least 8 bytes: a count past that is a broken frame, not a
        // reason to allocate.
        if count > (self.payload.len() - self.at) / 8 {
            return Err(FrameError(format!("{count} headers cannot fit the frame")));
        }
        let mut headers = Vec::with_capacity(count);
        for _ in 0..count {
            let name = self.string("a header name")?;
            let value = self.string("a header value")?;
            headers.push((name, value));
        }
        Ok((event_type, headers, self.rest()))
    }

    fn error(&mut self) -> Result<TransformError, FrameError> {
        Ok(match self.u8()? {
            1 => TransformError::Compile(self.string("an error message")?),
            2 => TransformError::Runtime(self.string("an error message")?),
            3 => TransformError::InvalidOutput(self.string("an error message")?),
            4 => TransformError::OutputTooLarge {
                max: self.u32()? as usize,
            },
            5 => TransformError::ProgramTooLong {
                len: self.u32()? as usize,
                max: self.u32()? as usize,
            },
            6 => TransformError::NestedTooDeep {
                line: self.u32()? as usize,
                column: self.u32()? as usize,
                max: self.u32()? as usize,
            },
            7 => TransformError::TooDeep {
                depth: self.u32()? as usize,
                max: self.u32()? as usize,
            },
            kind => return Err(FrameError(format!("unknown error kind {kind}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(mut frame: Vec<u8>) -> Bytes {
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        assert_eq!(len, frame.len() - 4, "the length prefix counts the payload");
        Bytes::from(frame.split_off(4))
    }

    #[test]
    fn a_request_round_trips() {
        let input = Input {
            body: Bytes::from_static(b"{\"id\":1}\x00\xff"),
            headers: vec![("X-A".into(), "1".into()), ("b".into(), String::new())],
            event_type: Some("order.paid".into()),
        };
        let mut out = Vec::new();
        encode_request(&mut out, ".body", &input, 1 << 20);
        let request = decode_request(&payload(out)).expect("a request decodes");
        assert_eq!(request.program(), ".body");
        assert_eq!(request.input, input);
        assert_eq!(request.max_output, 1 << 20);
    }

    #[test]
    fn every_response_round_trips() {
        let cases: Vec<Result<Output, TransformError>> = vec![
            Ok(Output::Drop),
            Ok(Output::Send {
                body: Bytes::from_static(b"a=1&b=2"),
                headers: vec![("content-type".into(), "text/plain".into())],
                event_type: None,
            }),
            Err(TransformError::Runtime("boom".into())),
            Err(TransformError::Compile("1:2: expected term".into())),
            Err(TransformError::InvalidOutput("x".into())),
            Err(TransformError::OutputTooLarge { max: 10 }),
            Err(TransformError::ProgramTooLong { len: 5, max: 4 }),
            Err(TransformError::NestedTooDeep {
                line: 1,
                column: 2,
                max: 3,
            }),
            Err(TransformError::TooDeep { depth: 5, max: 4 }),
        ];
        for case in cases {
            let mut out = Vec::new();
            encode_response(&mut out, &case);
            assert_eq!(
                decode_response(&payload(out)).expect("a response decodes"),
                case
            );
        }
    }

    #[test]
    fn long_error_messages_are_cut_on_a_char_boundary() {
        let message = "é".repeat(MAX_ERROR_MESSAGE);
        let mut out = Vec::new();
        encode_response(&mut out, &Err(TransformError::Runtime(message)));
        let Err(TransformError::Runtime(cut)) =
            decode_response(&payload(out)).expect("a response decodes")
        else {
            panic!("not a runtime error");
        };
        assert!(cut.len() <= MAX_ERROR_MESSAGE && !cut.is_empty());
    }

    #[test]
    fn broken_frames_are_errors_not_panics() {
        for bytes in [
            &b""[..],
            b"\x01",
            b"\x01\x00\x05\x00\x00\x00",
            b"\x01\x00\xff\xff\xff\xff",
            b"\x02\x09",
            b"\x00extra",
            b"\x07",
        ] {
            assert!(decode_response(&Bytes::copy_from_slice(bytes)).is_err());
        }
        assert!(decode_request(&Bytes::from_static(b"\x00\x00")).is_err());
        // A program that is not UTF-8.
        assert!(decode_request(&Bytes::from_static(b"\0\0\0\0\x01\0\0\0\xff\0\0\0\0\0")).is_err());
    }

    proptest::proptest! {
        #[test]
        fn no_bytes_panic_the_decoders(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let bytes = Bytes::from(bytes);
            let _ = decode_request(&bytes);
            let _ = decode_response(&bytes);
        }
    }
}

//! The worker process: `hookgate transform-worker`. It reads request frames on stdin, runs
//! each program on its input, and writes one response frame per request, in order, on
//! stdout, until stdin closes.
//!
//! A worker is disposable by design: the pool kills it when a run takes too long, and a
//! program that overflows the stack takes the process down with it. The pool starts it
//! with an empty environment (so jq's `env` and `$ENV` have nothing to show even if they did
//! not already answer `{}`) and its stderr to null.
//!
//! Responses are flushed when no further request is already waiting in the input buffer, so a
//! pool that sends several requests at once gets their answers in one write.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;
use std::rc::Rc;

use bytes::BytesMut;

use super::frame::{self, FRAME_SLACK};
use super::pool::HELLO;
use super::program::COMPILE_STACK_BYTES;
use super::{Output, Program, TransformError};

/// Compiled programs kept by text; one worker serves every endpoint.
const PROGRAM_CACHE: usize = 64;
/// The largest request a worker reads (a frame length past this is a broken pipe or parent).
const MAX_REQUEST: usize = 1 << 30;

/// Entry point of `hookgate transform-worker`: serves stdin and stdout until stdin closes.
pub fn main() -> ExitCode {
    // Programs run on a thread with the compiler's stack, so any program the guard lets
    // through runs as deep as it compiles; only a runaway recursion overflows it.
    let served = std::thread::Builder::new()
        .name("transform-worker".into())
        .stack_size(COMPILE_STACK_BYTES)
        .spawn(serve_stdio)
        .map(|thread| thread.join());
    match served {
        Ok(Ok(code)) => code,
        _ => ExitCode::from(2),
    }
}

fn serve_stdio() -> ExitCode {
    let input = BufReader::with_capacity(64 * 1024, io::stdin().lock());
    let mut output = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    // Hello first: the pool starts a run's clock only once the worker is up.
    let mut hello = Vec::with_capacity(HELLO.len() + 4);
    hello.extend_from_slice(&(HELLO.len() as u32).to_le_bytes());
    hello.extend_from_slice(HELLO);
    if output
        .write_all(&hello)
        .and_then(|()| output.flush())
        .is_err()
    {
        return ExitCode::from(2);
    }
    match serve(input, output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(2),
    }
}

/// Answers every request frame read from `input` on `output`, until `input` ends between two
/// frames (`Ok`) or breaks inside one (an error).
pub fn serve<R: Read, W: Write>(mut input: BufReader<R>, mut output: W) -> io::Result<()> {
    let mut cache: HashMap<String, Rc<Result<Program, TransformError>>> = HashMap::new();
    let mut answer = Vec::new();
    let mut buffer = BytesMut::new();
    loop {
        if input.buffer().is_empty() {
            output.flush()?;
        }
        let mut len = [0u8; 4];
        if input.fill_buf()?.is_empty() {
            return Ok(());
        }
        input.read_exact(&mut len)?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_REQUEST {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a request of {len} bytes"),
            ));
        }
        // One buffer for every payload: once the last run's body (a slice of it) is dropped,
        // `reserve` takes its allocation back, so no run allocates a large block. (glibc's
        // malloc consolidates every small free chunk on each large allocation, which cost
        // more than the run itself.)
        buffer.clear();
        buffer.reserve(len);
        buffer.resize(len, 0);
        input.read_exact(&mut buffer)?;
        let payload = buffer.split().freeze();
        let request = frame::decode_request(&payload)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;

        let program = match cache.get(request.program()) {
            Some(program) => Rc::clone(program),
            None => {
                let program = Rc::new(Program::compile(request.program()));
                if cache.len() >= PROGRAM_CACHE
                    && let Some(evicted) = cache.keys().next().cloned()
                {
                    cache.remove(&evicted);
                }
                cache.insert(request.program().to_owned(), Rc::clone(&program));
                program
            }
        };
        let result = match &*program {
            Ok(program) => run(program, &request.input, request.max_output),
            Err(error) => Err(error.clone()),
        };
        answer.clear();
        frame::encode_response(&mut answer, &result);
        if answer.len() > request.max_output.saturating_add(FRAME_SLACK) {
            answer.clear();
            let too_large = Err(TransformError::OutputTooLarge {
                max: request.max_output,
            });
            frame::encode_response(&mut answer, &too_large);
        }
        output.write_all(&answer)?;
    }
}

/// One run, its panics (a bug in jaq on some program) reported as runtime errors rather than
/// taking the worker down, and its output held to `max_output`.
fn run(
    program: &Program,
    input: &super::Input,
    max_output: usize,
) -> Result<Output, TransformError> {
    let output = catch_unwind(AssertUnwindSafe(|| program.run(input))).unwrap_or_else(|_| {
        Err(TransformError::Runtime(
            "the interpreter failed on this program".into(),
        ))
    })?;
    if output.size() > max_output {
        return Err(TransformError::OutputTooLarge { max: max_output });
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::Input;
    use crate::transform::frame::{decode_response, encode_request};
    use bytes::Bytes;

    fn answers(requests: &[(&str, Input, usize)]) -> Vec<Result<Output, TransformError>> {
        let mut stream = Vec::new();
        for (program, input, max) in requests {
            encode_request(&mut stream, program, input, *max);
        }
        let mut out = Vec::new();
        serve(BufReader::new(&stream[..]), &mut out).expect("served");
        let mut results = Vec::new();
        let mut rest = &out[..];
        while !rest.is_empty() {
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let payload = Bytes::copy_from_slice(&rest[4..4 + len]);
            results.push(decode_response(&payload).expect("a response"));
            rest = &rest[4 + len..];
        }
        results
    }

    fn input(body: &'static [u8]) -> Input {
        Input {
            body: Bytes::from_static(body),
            headers: vec![],
            event_type: None,
        }
    }

    #[test]
    fn answers_each_request_in_order_and_ends_with_its_input() {
        let results = answers(&[
            (".body |= {id}", input(br#"{"id":1,"x":2}"#), 1 << 20),
            ("null", input(b"{}"), 1 << 20),
            ("error(\"no\")", input(b"{}"), 1 << 20),
            ("(", input(b"{}"), 1 << 20),
            (".body |= {id}", input(br#"{"id":2}"#), 1 << 20),
        ]);
        assert_eq!(results.len(), 5);
        let body = |r: &Result<Output, TransformError>| match r {
            Ok(Output::Send { body, .. }) => body.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(body(&results[0]), &br#"{"id":1}"#[..]);
        assert_eq!(results[1], Ok(Output::Drop));
        assert_eq!(results[2], Err(TransformError::Runtime("no".into())));
        assert!(matches!(results[3], Err(TransformError::Compile(_))));
        assert_eq!(body(&results[4]), &br#"{"id":2}"#[..]);
    }

    #[test]
    fn an_output_over_max_output_is_an_error() {
        let results = answers(&[(".body = (\"x\" * 100)", input(b"{}"), 50)]);
        assert_eq!(
            results,
            vec![Err(TransformError::OutputTooLarge { max: 50 })]
        );
    }

    #[test]
    fn env_is_empty_even_in_a_process_with_an_environment() {
        let results = answers(&[("{body: {env: env, ENV: $ENV}}", input(b"{}"), 1 << 20)]);
        let Ok(Output::Send { body, .. }) = &results[0] else {
            panic!("{results:?}");
        };
        assert_eq!(body, &br#"{"env":{},"ENV":{}}"#[..]);
    }

    #[test]
    fn a_request_cut_short_is_an_error() {
        let mut stream = Vec::new();
        encode_request(&mut stream, ".", &input(b"{}"), 10);
        stream.truncate(stream.len() - 1);
        assert!(serve(BufReader::new(&stream[..]), Vec::new()).is_err());
    }
}

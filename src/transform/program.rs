//! A transform's jq program: the guard in front of jaq's parser, compilation with errors as
//! `line:column` text, and one run over an [`Input`].
//!
//! A program comes from a config file or an API body and is compiled in the gateway process,
//! so nothing in its text may overflow the gateway's stack. jaq's lexer, parser and compiler
//! recurse over the program's structure: not only brackets but prefix keywords (`- - - 1`,
//! `try try …`, `def f: def g: …`) and chains of binary operators (`a | b | c …` becomes a
//! tree as deep as the chain). So the guard refuses, before jaq sees the text, texts over
//! [`MAX_PROGRAM_BYTES`], brackets nested deeper than [`MAX_NESTING`], and structures deeper
//! than [`MAX_DEPTH`] by a conservative count ([`depth_estimate`]); and parsing and compiling
//! happen on a thread of their own whose stack ([`COMPILE_STACK_BYTES`]) holds several times
//! the deepest structure the guard lets through, whatever the caller's own stack is.
//!
//! [`Program::run`] evaluates the program, and is only ever called in a worker process
//! (`super::worker`): a runaway program there is stopped by killing the process.

use jaq_core::compile::Undefined;
use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::native::{Fun, bome, run, v};
use jaq_core::{Compiler, Ctx, Vars, data::JustLut};
use jaq_json::Val;

use super::output::{self, Output};
use super::{Input, TransformError};

/// The longest program text accepted, in bytes.
pub const MAX_PROGRAM_BYTES: usize = 64 * 1024;
/// The deepest nesting of `(`, `[`, `{` and string interpolations accepted.
pub const MAX_NESTING: usize = 128;
/// The deepest structure accepted, by [`depth_estimate`]. A debug build takes up to ~11 KiB
/// of stack per level to parse, compile and drop a program (measured), a release build less.
pub const MAX_DEPTH: usize = 1000;
/// The stack of the thread that parses and compiles a program (and of a worker's thread that
/// runs them): over five times what [`MAX_DEPTH`] levels take. Only reserved address space
/// until touched; the tests compile and run the deepest texts the guard lets through on it.
pub const COMPILE_STACK_BYTES: usize = 64 * 1024 * 1024;
/// At most this many of jaq's errors are reported for one program.
const MAX_REPORTED_ERRORS: usize = 5;

/// jaq's data kind for our programs: plain JSON values, no `input`.
type Data = JustLut<Val>;
type Filter = jaq_core::Filter<Data>;

/// A compiled program, ready to [`run`](Program::run).
pub struct Program {
    filter: Filter,
}

thread_local! {
    /// The global variables (`$ENV`, an empty object), built once per thread: every run shares
    /// them rather than allocating them again. (Per thread because jaq's values are not
    /// `Send`, and a `Program` is.)
    static VARS: Vars<Val> = Vars::new([Val::obj(Default::default())]);
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Program")
    }
}

impl Program {
    /// Checks that `text` is a program hookgate would run: the guard, then jaq's parser and
    /// compiler. Never runs it. For config and API validation in the gateway process.
    pub fn check(text: &str) -> Result<(), TransformError> {
        Self::compile(text).map(drop)
    }

    /// Compiles `text` (after the guard) on a thread with a large stack, so no text can
    /// overflow the caller's.
    pub fn compile(text: &str) -> Result<Self, TransformError> {
        guard(text)?;
        let text = text.to_owned();
        let compiled = std::thread::Builder::new()
            .name("transform-compile".into())
            .stack_size(COMPILE_STACK_BYTES)
            .spawn(move || compile_unguarded(&text))
            .map_err(|e| TransformError::Compile(format!("cannot start the compiler: {e}")))?
            .join();
        match compiled {
            Ok(result) => result.map(|filter| Self { filter }),
            // jaq panicked: a bug in jaq on this text, reported rather than propagated.
            Err(_) => Err(TransformError::Compile(
                "the compiler failed on this program".into(),
            )),
        }
    }

    /// Runs the program on `input`. **Call this only in a worker process**: nothing bounds
    /// the time, memory or stack a program takes.
    pub fn run(&self, input: &Input) -> Result<Output, TransformError> {
        let (value, body) = output::input_value(input);
        let ctx = Ctx::<Data>::new(&self.filter.lut, VARS.with(Vars::clone));
        let mut outputs = self.filter.id.run((ctx, value));
        let first = match outputs.next() {
            None => {
                return Err(TransformError::InvalidOutput(
                    "the program gave no output; output null to drop the delivery".into(),
                ));
            }
            Some(result) => result.map_err(exception)?,
        };
        if let Some(second) = outputs.next() {
            // An error as the second output is still an error of the program.
            second.map_err(exception)?;
            return Err(TransformError::InvalidOutput(
                "the program gave more than one output; give one object, or null to drop".into(),
            ));
        }
        Output::validate(first, input, Some(&body))
    }
}

/// A runtime exception as the error a user reads: jaq's message, a string error's text
/// without quotes, or the halt that stopped the program.
fn exception(exn: jaq_core::Exn<'_, Val>) -> TransformError {
    match exn.get_err() {
        Ok(error) => TransformError::Runtime(match error.into_val() {
            Val::TStr(s) | Val::BStr(s) => String::from_utf8_lossy(&s).into_owned(),
            other => format!("{other} (not a string)"),
        }),
        Err(exn) => match exn.get_halt() {
            Ok(code) => TransformError::Runtime(format!("the program halted (exit code {code})")),
            Err(_) => TransformError::Runtime("the program broke out of its definitions".into()),
        },
    }
}

/// The natives a program may call: jaq's core, standard and JSON ones, with `env` answering
/// an empty object, so no program sees the environment of the process it runs in.
fn natives() -> impl Iterator<Item = Fun<Data>> {
    let empty_env: Fun<Data> = run(("env", v(0), |_| bome(Ok(Val::obj(Default::default())))));
    jaq_core::funs::<Data>()
        .chain(jaq_std::funs::<Data>().filter(|(name, _, _)| *name != "env"))
        .chain(jaq_json::funs::<Data>())
        .chain([empty_env])
}

/// Parses and compiles a text that passed the guard. Recursive in the program's structure:
/// see [`Program::compile`] for the thread it runs on.
fn compile_unguarded(text: &str) -> Result<Filter, TransformError> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let arena = Arena::default();
    let modules = Loader::new(defs)
        .load(
            &arena,
            File {
                code: text,
                path: (),
            },
        )
        .map_err(|errors| {
            let messages = errors
                .into_iter()
                .flat_map(|(file, error)| load_messages(text, file.code, error));
            TransformError::Compile(join(messages))
        })?;
    // `import "x" as $data;` would read a file at run time: refuse it here.
    load::import(&modules, |_| Err(String::new())).map_err(|errors| {
        let messages = errors.into_iter().flat_map(|(file, error)| match error {
            load::Error::Io(paths) => paths
                .into_iter()
                .map(|(path, _)| {
                    at(
                        text,
                        file.code,
                        path,
                        "data files cannot be imported in a transform",
                    )
                })
                .collect(),
            other => load_messages(text, file.code, other),
        });
        TransformError::Compile(join(messages))
    })?;
    Compiler::default()
        .with_funs(natives())
        .with_global_vars(["$ENV"])
        .compile(modules)
        .map_err(|errors| {
            let messages = errors.into_iter().flat_map(|(file, undefined)| {
                undefined
                    .into_iter()
                    .map(move |(name, kind)| {
                        let what = match kind {
                            Undefined::Filter(arity) => format!("undefined filter {name}/{arity}"),
                            other => format!("undefined {} {name}", other.as_str()),
                        };
                        at(text, file.code, name, &what)
                    })
                    .collect::<Vec<_>>()
            });
            TransformError::Compile(join(messages))
        })
}

fn load_messages(text: &str, code: &str, error: load::Error<&str>) -> Vec<String> {
    match error {
        load::Error::Io(paths) => paths
            .into_iter()
            .map(|(path, _)| {
                at(
                    text,
                    code,
                    path,
                    "modules cannot be included in a transform",
                )
            })
            .collect(),
        load::Error::Lex(errors) => errors
            .into_iter()
            .map(|(expect, found)| {
                use load::lex::Expect;
                let what = match expect {
                    Expect::Delim(open) => {
                        let close = match open {
                            "(" => "`)`",
                            "[" => "`]`",
                            "{" => "`}`",
                            _ => "the closing quote",
                        };
                        let (line, column) = position(text, open).unwrap_or((0, 0));
                        format!("expected {close} to close the `{open}` at {line}:{column}")
                    }
                    other => format!("expected {}{}", other.as_str(), found_text(found)),
                };
                at(text, code, found, &what)
            })
            .collect(),
        load::Error::Parse(errors) => errors
            .into_iter()
            .map(|(expect, found)| {
                let what = format!("expected {}{}", expect.as_str(), found_text(found));
                at(text, code, found, &what)
            })
            .collect(),
    }
}

/// `, found …` for an error message: the first token's worth of `found`, or the end.
fn found_text(found: &str) -> String {
    let token: String = found
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(20)
        .collect();
    if token.trim().is_empty() {
        ", found the end of the program".into()
    } else {
        format!(", found `{token}`")
    }
}

/// `line:column: what` when `part` lies in the user's text (errors in the standard
/// definitions, which should not happen, carry no position).
fn at(text: &str, code: &str, part: &str, what: &str) -> String {
    match position(text, part) {
        Some((line, column)) if std::ptr::eq(text.as_ptr(), code.as_ptr()) => {
            format!("{line}:{column}: {what}")
        }
        _ => what.to_owned(),
    }
}

/// The 1-based line and column (in characters) at which `part`, a slice of `text`, starts.
fn position(text: &str, part: &str) -> Option<(usize, usize)> {
    let start = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let before = text.get(..start)?;
    Some(line_column(before))
}

/// Line and column just after `before`.
fn line_column(before: &str) -> (usize, usize) {
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn join(messages: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = messages.collect();
    let mut text = all
        .iter()
        .take(MAX_REPORTED_ERRORS)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if all.len() > MAX_REPORTED_ERRORS {
        text.push_str(&format!("; and {} more", all.len() - MAX_REPORTED_ERRORS));
    }
    if text.is_empty() {
        text = "the program does not compile".into();
    }
    text
}

/// Refuses texts over [`MAX_PROGRAM_BYTES`], nesting deeper than [`MAX_NESTING`], and
/// structures deeper than [`MAX_DEPTH`] by [`depth_estimate`]'s count.
pub fn guard(text: &str) -> Result<(), TransformError> {
    if text.len() > MAX_PROGRAM_BYTES {
        return Err(TransformError::ProgramTooLong {
            len: text.len(),
            max: MAX_PROGRAM_BYTES,
        });
    }
    let depth = depth_estimate(text)?;
    if depth > MAX_DEPTH {
        return Err(TransformError::TooDeep {
            depth,
            max: MAX_DEPTH,
        });
    }
    Ok(())
}

/// One bracket (or string interpolation) being read.
#[derive(Default)]
struct Level {
    /// A `\(…)` in a string: its `)` returns to the string.
    interpolation: bool,
    /// Operators and keywords read at this level.
    count: usize,
    /// The deepest estimate of a bracket closed inside it.
    deepest_inside: usize,
}

impl Level {
    fn depth(&self) -> usize {
        self.count + 1 + self.deepest_inside
    }
}

/// An upper bound of how deep jaq's parser, compiler and interpreter recurse on `text`,
/// reading it as jaq's lexer does (comments, continued by a line ending in an odd number of
/// backslashes; strings, whose `\(…)` nest like brackets). jaq recurses once per bracket,
/// per prefix keyword (`def`, `if`, `try`, `reduce`, `-`…) and per binary operator of a
/// chain (precedence climbing builds `a | b | c` as a tree as deep as the chain is long). So
/// each bracket level counts 1 plus its operators, keywords, commas and semicolons (an
/// object's entries, or a call's arguments, are bound one inside the other too) plus the
/// deepest level inside it. Refuses nesting deeper than
/// [`MAX_NESTING`] on the way, naming where.
pub fn depth_estimate(text: &str) -> Result<usize, TransformError> {
    const KEYWORDS: &[&str] = &[
        "def", "if", "elif", "try", "catch", "label", "reduce", "foreach", "and", "or", "as",
    ];
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut levels = vec![Level::default()];
    let mut in_string = false;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if in_string {
            match c {
                '"' => in_string = false,
                '\\' => {
                    if let Some((_, '(')) = chars.next() {
                        // The string becomes a chain of its parts: one more link here.
                        let level = levels.len() - 1;
                        levels[level].count += 1;
                        open(&mut levels, true, text, i)?;
                        in_string = false;
                    }
                }
                _ => {}
            }
            continue;
        }
        let level = levels.len() - 1;
        match c {
            '"' => in_string = true,
            '#' => skip_comment(&mut chars),
            '(' | '[' | '{' => open(&mut levels, false, text, i)?,
            ')' | ']' | '}' => {
                if levels.len() > 1
                    && let Some(closed) = levels.pop()
                {
                    let parent = levels.len() - 1;
                    levels[parent].deepest_inside =
                        levels[parent].deepest_inside.max(closed.depth());
                    in_string = closed.interpolation;
                }
            }
            // Variables, formats and field names: words that are never keywords.
            '$' | '@' | '.' => while chars.next_if(|&(_, c)| is_word(c)).is_some() {},
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = i + c.len_utf8();
                while let Some((j, c)) = chars.next_if(|&(_, c)| is_word(c) || c == ':') {
                    end = j + c.len_utf8();
                }
                if KEYWORDS.contains(&&text[i..end]) {
                    levels[level].count += 1;
                }
            }
            c if c.is_ascii_digit() => while chars.next_if(|&(_, c)| is_word(c)).is_some() {},
            // An operator: one of these, then any run of them but `-` (as jaq lexes).
            '|' | '=' | '!' | '<' | '>' | '+' | '-' | '*' | '/' | '%' => {
                while chars.next_if(|&(_, c)| "|=!<>+*/%".contains(c)).is_some() {}
                levels[level].count += 1;
            }
            ',' | ';' => levels[level].count += 1,
            '?' => levels[level].count += 1,
            _ => {}
        }
    }
    // Unclosed brackets (a syntax error jaq reports) still count.
    while levels.len() > 1 {
        if let Some(closed) = levels.pop() {
            let parent = levels.len() - 1;
            levels[parent].deepest_inside = levels[parent].deepest_inside.max(closed.depth());
        }
    }
    Ok(levels.first().map_or(0, Level::depth))
}

fn open(
    levels: &mut Vec<Level>,
    interpolation: bool,
    text: &str,
    at: usize,
) -> Result<(), TransformError> {
    levels.push(Level {
        interpolation,
        ..Level::default()
    });
    // The root level is not a bracket.
    if levels.len() - 1 > MAX_NESTING {
        let (line, column) = line_column(&text[..at]);
        return Err(TransformError::NestedTooDeep {
            line,
            column,
            max: MAX_NESTING,
        });
    }
    Ok(())
}

/// Skips a comment up to its end: the end of a line that does not end in an odd number of
/// backslashes (before an optional `\r`), as jaq's lexer reads it.
fn skip_comment(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) {
    let mut backslashes = 0usize;
    for (_, c) in chars.by_ref() {
        match c {
            '\n' if backslashes.is_multiple_of(2) => return,
            '\n' => backslashes = 0,
            '\\' => backslashes += 1,
            '\r' => {}
            _ => backslashes = 0,
        }
    }
}

#[cfg(test)]
mod tests;

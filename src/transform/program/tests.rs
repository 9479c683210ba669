use bytes::Bytes;

use super::*;

fn input(body: &str) -> Input {
    Input {
        body: Bytes::copy_from_slice(body.as_bytes()),
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("X-Tenant".into(), "acme".into()),
        ],
        event_type: Some("order.paid".into()),
    }
}

fn run(program: &str, input: &Input) -> Result<Output, TransformError> {
    Program::compile(program)?.run(input)
}

fn sent(result: Result<Output, TransformError>) -> (String, Vec<(String, String)>, Option<String>) {
    match result {
        Ok(Output::Send {
            body,
            headers,
            event_type,
        }) => (
            String::from_utf8(body.to_vec()).expect("a text body"),
            headers,
            event_type,
        ),
        other => panic!("not sent: {other:?}"),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn invalid_output(result: Result<Output, TransformError>) -> String {
    match result {
        Err(e @ TransformError::InvalidOutput(_)) => e.to_string(),
        other => panic!("not an invalid output: {other:?}"),
    }
}

fn compile_error(program: &str) -> String {
    match Program::check(program) {
        Err(e @ TransformError::Compile(_)) => e.to_string(),
        other => panic!("{program:?} is not a compile error: {other:?}"),
    }
}

#[test]
fn reshapes_the_body() {
    let (body, headers, event_type) = sent(run(
        ".body |= {id: .id, total: .amount.total}",
        &input(r#"{"id": "ord_1", "amount": {"total": 10.50, "currency": "EUR"}, "x": [1]}"#),
    ));
    // Numbers keep their text (10.50), output is compact.
    assert_eq!(body, r#"{"id":"ord_1","total":10.50}"#);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(event_type.as_deref(), Some("order.paid"));
}

#[test]
fn adds_a_header_and_keeps_the_body_bytes() {
    let original = "{ \"id\" : 1,\n  \"big\": 12345678901234567890123 }";
    let (body, headers, _) = sent(run(
        r#".headers["X-Source"] = "hookgate""#,
        &input(original),
    ));
    // The program did not touch the body: its bytes go out as stored.
    assert_eq!(body, original);
    assert_eq!(header(&headers, "x-source"), Some("hookgate"));
    assert_eq!(header(&headers, "x-tenant"), Some("acme"));
    assert!(headers.iter().all(|(n, _)| *n == n.to_ascii_lowercase()));
}

#[test]
fn form_encoding_with_its_content_type() {
    let program = r#"
        .body |= "name=\(.name | @uri)&count=\(.count)"
        | .headers["content-type"] = "application/x-www-form-urlencoded"
    "#;
    let (body, headers, _) = sent(run(program, &input(r#"{"name": "a b&c", "count": 2}"#)));
    assert_eq!(body, "name=a%20b%26c&count=2");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(headers.len(), 2, "{headers:?}");
}

#[test]
fn json_body_gets_a_content_type_when_the_headers_have_none() {
    let (_, headers, _) = sent(run(r#"{body: {a: 1}, headers: {}}"#, &input("{}")));
    assert_eq!(
        headers,
        vec![("content-type".into(), "application/json".into())]
    );
    // A string body gets none.
    let (body, headers, _) = sent(run(r#"{body: "plain", headers: {}}"#, &input("{}")));
    assert_eq!(body, "plain");
    assert!(headers.is_empty());
}

#[test]
fn absent_keys_keep_the_input() {
    let i = input(r#"{"a":1}"#);
    let (body, headers, event_type) = sent(run("{}", &i));
    assert_eq!(body, r#"{"a":1}"#);
    assert_eq!(headers, i.headers, "the input's headers, as given");
    assert_eq!(event_type.as_deref(), Some("order.paid"));
    let (_, _, event_type) = sent(run("{event_type: null}", &i));
    assert_eq!(event_type, None);
    let (_, _, event_type) = sent(run(r#".event_type = "order.settled""#, &i));
    assert_eq!(event_type.as_deref(), Some("order.settled"));
}

#[test]
fn null_drops_the_delivery() {
    assert_eq!(run("null", &input("{}")), Ok(Output::Drop));
    let program = r#"if .event_type == "order.paid" then null else . end"#;
    assert_eq!(run(program, &input("{}")), Ok(Output::Drop));
}

#[test]
fn no_output_tells_to_output_null() {
    let message = invalid_output(run("empty", &input("{}")));
    assert!(
        message.starts_with("transform: invalid output:"),
        "{message}"
    );
    assert!(message.contains("output null to drop"), "{message}");
    let message = invalid_output(run("select(.body.x == 1)", &input(r#"{"x":2}"#)));
    assert!(message.contains("no output"), "{message}");
}

#[test]
fn more_than_one_output_is_invalid() {
    let message = invalid_output(run(". , .", &input("{}")));
    assert!(message.contains("more than one output"), "{message}");
}

#[test]
fn a_non_object_output_is_invalid() {
    for program in ["1", r#""text""#, "[.]", "true", ".body"] {
        let message = invalid_output(run(program, &input("[1]")));
        assert!(message.contains("give an object"), "{program}: {message}");
    }
}

#[test]
fn wrong_types_in_the_output_are_invalid() {
    for (program, names) in [
        (r#"{headers: "x"}"#, "headers must be an object"),
        (r#"{headers: {"x-n": 1}}"#, "\"x-n\" must be a string"),
        (r#"{event_type: 1}"#, "event_type must be a string or null"),
        (r#"{event_type: "a\nb"}"#, "control character"),
        (r#"{bodyy: 1}"#, "unknown key \"bodyy\""),
        (
            r#"{body: {a: [1, ("x" | tobytes)]}}"#,
            "body[a][1]: a byte string",
        ),
        (r#"{body: {(1): 2}}"#, "object key must be a string"),
    ] {
        let message = invalid_output(run(program, &input("{}")));
        assert!(message.contains(names), "{program}: {message}");
    }
}

#[test]
fn bad_and_reserved_headers_are_named() {
    for (program, names) in [
        (
            r#".headers["bad name"] = "x""#,
            "\"bad name\" is not a valid HTTP header name",
        ),
        (
            r#".headers["x-a"] = "line\nbreak""#,
            "value of \"x-a\" is not a valid HTTP header value",
        ),
        (
            r#".headers["Webhook-Signature"] = "v1,x""#,
            "\"webhook-signature\" is set by hookgate",
        ),
        (r#".headers.Host = "evil""#, "\"host\" is set by hookgate"),
        (
            r#".headers["hookgate-x"] = "1""#,
            "\"hookgate-x\" is set by hookgate",
        ),
        (
            r#".headers["x-a"] = "1" | .headers["X-A"] = "2""#,
            "\"x-a\" is given twice",
        ),
    ] {
        let message = invalid_output(run(program, &input("{}")));
        assert!(message.contains(names), "{program}: {message}");
    }
}

#[test]
fn a_body_that_is_not_json_is_a_string() {
    let i = input("a=1&b=2");
    let (body, headers, _) = sent(run(r#".body |= ascii_upcase"#, &i));
    assert_eq!(body, "A=1&B=2");
    assert_eq!(
        header(&headers, "content-type"),
        Some("application/json"),
        "the input's"
    );
    let (body, _, _) = sent(run(r#"{body: {raw: .body}}"#, &i));
    assert_eq!(body, r#"{"raw":"a=1&b=2"}"#);
    // Invalid UTF-8 goes through untouched when the program leaves it alone.
    let binary = Input {
        body: Bytes::from_static(b"\xff\x00\xfe"),
        ..input("")
    };
    let Ok(Output::Send { body, .. }) = run(".headers.x = \"1\"", &binary) else {
        panic!()
    };
    assert_eq!(&body[..], b"\xff\x00\xfe");
}

#[test]
fn the_program_sees_lower_cased_headers_and_the_event_type() {
    let i = Input {
        headers: vec![
            ("X-Multi".into(), "a".into()),
            ("x-multi".into(), "b".into()),
        ],
        ..input("{}")
    };
    let (body, _, _) = sent(run("{body: {h: .headers, t: .event_type}}", &i));
    assert_eq!(body, r#"{"h":{"x-multi":"a, b"},"t":"order.paid"}"#);
}

#[test]
fn runtime_errors_carry_jaqs_message() {
    assert_eq!(
        run(r#"error("no customer")"#, &input("{}")),
        Err(TransformError::Runtime("no customer".into()))
    );
    let Err(TransformError::Runtime(message)) = run(".body.a.b", &input(r#"{"a": 1}"#)) else {
        panic!()
    };
    assert!(message.contains("cannot index 1"), "{message}");
    let Err(TransformError::Runtime(message)) = run("halt", &input("{}")) else {
        panic!()
    };
    assert!(message.contains("halted"), "{message}");
}

#[test]
fn the_environment_is_never_shown() {
    let (body, _, _) = sent(run("{body: [env, $ENV]}", &input("{}")));
    assert_eq!(body, "[{},{}]");
}

#[test]
fn non_json_numbers_are_written_as_jq_writes_them() {
    let (body, _, _) = sent(run(
        "{body: [nan, infinite, -infinite, 1.5, 100000000000000000000]}",
        &input("{}"),
    ));
    assert_eq!(
        body,
        "[null,1.7976931348623157e+308,-1.7976931348623157e+308,1.5,100000000000000000000]"
    );
}

#[test]
fn compile_errors_give_line_and_column() {
    let message = compile_error(".body |= {id: .id");
    assert!(message.starts_with("transform: "), "{message}");
    assert!(message.contains("to close the `{` at 1:10"), "{message}");
    let message = compile_error(".body\n| frobnicate");
    assert!(
        message.contains("2:3: undefined filter frobnicate/0"),
        "{message}"
    );
    let message = compile_error(".body |");
    assert!(
        message.contains("1:8: expected term, found the end of the program"),
        "{message}"
    );
    let message = compile_error("{a: $nope}");
    assert!(
        message.contains("1:5: undefined variable $nope"),
        "{message}"
    );
    let message = compile_error(". as [$a, $b,] | 1");
    assert!(message.contains("1:"), "{message}");
}

#[test]
fn modules_and_data_files_cannot_be_loaded() {
    let message = compile_error("include \"x\"; .");
    assert!(message.contains("cannot be included"), "{message}");
    let message = compile_error("import \"data\" as $d; .");
    assert!(message.contains("cannot be imported"), "{message}");
}

#[test]
fn the_guard_refuses_long_programs() {
    let long = format!(". {}", " ".repeat(MAX_PROGRAM_BYTES));
    assert_eq!(
        Program::check(&long),
        Err(TransformError::ProgramTooLong {
            len: MAX_PROGRAM_BYTES + 2,
            max: MAX_PROGRAM_BYTES
        })
    );
}

#[test]
fn the_guard_refuses_deep_nesting_and_says_where() {
    let ok = format!("{}.{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
    assert_eq!(Program::check(&ok), Ok(()));
    let deep = format!("\n  {}.{}", "[(".repeat(65), ")]".repeat(65));
    assert_eq!(
        Program::check(&deep),
        Err(TransformError::NestedTooDeep {
            line: 2,
            column: 2 + 129,
            max: MAX_NESTING
        })
    );
    // String interpolations nest like brackets…
    let interpolated = format!("{}.{}", "\"\\(".repeat(129), ")\"".repeat(129));
    assert!(matches!(
        Program::check(&interpolated),
        Err(TransformError::NestedTooDeep { .. })
    ));
    // …but brackets in strings and comments do not count.
    let quoted = format!("\"{}\" # {}\n", "(".repeat(1000), "[".repeat(1000));
    assert_eq!(Program::check(&quoted), Ok(()));
    // A comment continued by a backslash, as jaq reads it.
    let continued = format!("# a \\\n {} \n.", "(".repeat(1000));
    assert_eq!(Program::check(&continued), Ok(()));
}

#[test]
fn the_guard_counts_operators_keywords_and_brackets() {
    let depth = |text: &str| depth_estimate(text).expect("within the nesting limit");
    assert_eq!(depth("."), 1);
    assert_eq!(depth(".a | .b | .c"), 3);
    // Grouping keeps chains shallow.
    assert_eq!(depth("(.a | .b) | (.c | .d)"), 4);
    assert_eq!(depth("- - - 1"), 4);
    assert_eq!(depth("if . then try .a catch 1 else 2 end"), 4);
    // Commas chain, in arrays and objects alike.
    assert_eq!(depth("{a: 1, b: 2, c: 3}"), 4);
    assert_eq!(depth("[1, 2, 3]"), 4);
    // Field names, variables and formats are not keywords; strings and comments do not count.
    assert_eq!(depth(".if | $as | @def"), 3);
    assert_eq!(depth(r#""| | | (" # | | |"#), 1);
    assert_eq!(depth(r#""a\(1 + 2)b""#), 4);
}

#[test]
fn the_guard_refuses_deep_structures() {
    let chain = format!(".{}", " | .".repeat(MAX_DEPTH));
    assert_eq!(
        Program::check(&chain),
        Err(TransformError::TooDeep {
            depth: MAX_DEPTH + 1,
            max: MAX_DEPTH
        })
    );
    let message = Program::check(&"-".repeat(5000))
        .expect_err("refused")
        .to_string();
    assert!(message.contains("over the limit of 1000"), "{message}");
}

/// The deepest shapes of every kind the guard lets through compile on the compile thread,
/// and run on a thread of the worker's stack, without overflowing either. (Each failed in a
/// debug build on an 8 MiB stack at 750 to 1250 levels.)
#[test]
fn the_deepest_programs_the_guard_lets_through_compile_and_run() {
    let near = |unit: &str, per: usize, tail: &str| unit.repeat((MAX_DEPTH - 4) / per) + tail;
    let shapes = [
        near("-", 1, "1"),
        near("try ", 1, "1"),
        near("1 as $x | ", 2, "."),
        near(". | ", 1, "."),
        near("1, ", 1, "1"),
        near("1 + ", 1, "1"),
        near("not and ", 1, "true"),
        near("def f: ", 1, "."),
        near(". // ", 1, "."),
        near("label $out | ", 2, "."),
        format!(
            "{}.{}",
            "if . then ".repeat(MAX_DEPTH - 4),
            " end".repeat(MAX_DEPTH - 4)
        ),
        // Wide: objects, patterns, interpolations, parameters, paths.
        format!(
            "{{{}}}",
            (0..MAX_DEPTH - 4)
                .map(|i| format!("a{i}: .x"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "{{{}}}",
            (0..MAX_DEPTH - 4)
                .map(|i| format!("\"k{i}\": [.]"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!("\"{}\"", "\\(.a)-".repeat(MAX_DEPTH - 4)),
        format!(
            ". as [{}] | .",
            (0..MAX_DEPTH - 10)
                .map(|i| format!("$a{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            ". as {{{}}} | .",
            (0..MAX_DEPTH - 10)
                .map(|i| format!("$a{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "def f({}): .; 1",
            (0..MAX_DEPTH - 10)
                .map(|i| format!("a{i}"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        format!(
            "def f({}): .; 1",
            (0..MAX_DEPTH - 10)
                .map(|i| format!("$a{i}"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        format!("def f(a): .; f({})", vec!["1"; MAX_DEPTH - 10].join("; ")),
        format!(
            "{{{}}}",
            (0..MAX_DEPTH - 4)
                .map(|i| format!("(.k{i}): 1"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ".[0]".repeat(15000),
        ".a".repeat(30000),
        ".a?".repeat(MAX_DEPTH - 4),
        // Brackets as deep as allowed, each with a chain inside.
        format!(
            "{}.{}",
            "(1 + 1 + 1 + 1 + 1 + ".repeat(MAX_NESTING - 1),
            ")".repeat(MAX_NESTING - 1)
        ),
    ];
    for program in shapes {
        assert_eq!(guard(&program), Ok(()), "{:?}", &program[..30]);
        let compiled = Program::compile(&program);
        let compiled = match compiled {
            Ok(p) => p,
            // A compile error is fine (`def f:` without a body); a crash is not.
            Err(e) => {
                assert!(matches!(e, TransformError::Compile(_)), "{e}");
                continue;
            }
        };
        std::thread::Builder::new()
            .stack_size(COMPILE_STACK_BYTES)
            .spawn(move || {
                let _ = compiled.run(&input("{}"));
            })
            .expect("a thread")
            .join()
            .expect("ran without a crash");
    }
}

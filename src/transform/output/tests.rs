use super::*;

fn json(value: &Val) -> Result<String, String> {
    let mut out = Vec::new();
    write_json(&mut out, value, 0).map_err(|e| e.reason)?;
    Ok(String::from_utf8(out).expect("JSON is UTF-8"))
}

fn parse(text: &str) -> Val {
    jaq_json::read::parse_single(text.as_bytes()).expect("test JSON parses")
}

#[test]
fn writes_compact_json_keeping_number_text() {
    let text =
        r#"{"a": [1, -2.50, 1e3, 12345678901234567890123, 0.1], "b": {"c": null, "d": true}}"#;
    assert_eq!(
        json(&parse(text)).expect("writes"),
        r#"{"a":[1,-2.50,1e3,12345678901234567890123,0.1],"b":{"c":null,"d":true}}"#
    );
}

#[test]
fn escapes_strings_and_replaces_invalid_utf8() {
    let value = Val::utf8_str(&b"q\"b\\n\n\t\x01\x7f\xff\xc3\xa9"[..]);
    assert_eq!(
        json(&value).expect("writes"),
        "\"q\\\"b\\\\n\\n\\t\\u0001\x7f\u{fffd}é\""
    );
}

#[test]
fn byte_strings_and_non_string_keys_are_errors() {
    assert!(json(&Val::byte_str(&b"x"[..])).is_err());
    assert!(json(&parse("{1: 2}")).is_err());
}

#[test]
fn depth_is_bounded() {
    let mut value = Val::Null;
    for _ in 0..MAX_OUTPUT_DEPTH {
        value = [value].into_iter().collect();
    }
    assert!(json(&value).is_ok());
    let deeper: Val = [value].into_iter().collect();
    assert!(json(&deeper).expect_err("too deep").contains("deeper than"));
}

#[test]
fn json_number_grammar() {
    for ok in ["0", "-0", "1.5", "10.50", "1e3", "1E+3", "-2.5e-3", "123"] {
        assert!(is_json_number(ok), "{ok}");
    }
    for bad in ["", "-", "01", "1.", ".5", "1e", "+1", "NaN", "1.5.5", "0x1"] {
        assert!(!is_json_number(bad), "{bad}");
    }
}

#[test]
fn bodies_are_parsed_only_when_they_are_strict_json() {
    assert!(matches!(
        body_value(&Bytes::from_static(b" {\"a\":1} ")),
        Val::Obj(_)
    ));
    for not_json in [
        &b"NaN"[..],
        b"# c\n1",
        b"b\"x\"",
        b"{a:1}",
        b"",
        b"1 2",
        b"\xff",
    ] {
        assert!(
            matches!(body_value(&Bytes::from_static(not_json)), Val::TStr(_)),
            "{not_json:?}"
        );
    }
    // Nested past serde_json's limit: a string, not a stack overflow in the parser.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(body_value(&Bytes::from(deep)), Val::TStr(_)));
}

#[test]
fn from_value_without_the_given_body_still_adds_the_content_type() {
    let input = Input {
        body: Bytes::from_static(b"[1]"),
        headers: vec![],
        event_type: None,
    };
    let output =
        Output::from_value(parse(r#"{"headers": {"x-a": "1"}}"#), &input).expect("a valid output");
    assert_eq!(
        output,
        Output::Send {
            body: Bytes::from_static(b"[1]"),
            headers: vec![
                ("x-a".into(), "1".into()),
                ("content-type".into(), "application/json".into())
            ],
            event_type: None,
        }
    );
    assert_eq!(output.size(), 3 + 4 + 12 + 16);
}

#[test]
fn fuzz_entry_accepts_samples() {
    for sample in [
        &b"null"[..],
        b"{}",
        b"{\"body\": [1, NaN, b\"x\"]}",
        b"{\"headers\": {\"X-A\": \"1\", \"host\": \"x\"}}",
        b"{\"headers\": {\"X-A\": \"1\"}, \"body\": {\"a\": Infinity}}",
        b"{1: 2}",
        b"[[[[[[[[[[",
        b"\xff",
    ] {
        fuzz_transform_output(sample);
    }
}

proptest::proptest! {
    #[test]
    fn fuzz_entry_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..128)) {
        fuzz_transform_output(&bytes);
    }

    #[test]
    fn any_headers_object_is_valid_or_an_error(
        names in proptest::collection::vec("[ -~]{0,12}", 0..4),
        value in "[ -~\t\n]{0,12}",
    ) {
        let mut headers = jaq_json::Map::default();
        for name in &names {
            headers.insert(Val::utf8_str(name.clone().into_bytes()), Val::utf8_str(value.clone().into_bytes()));
        }
        let mut object = jaq_json::Map::default();
        object.insert(Val::utf8_str(&b"headers"[..]), Val::obj(headers));
        let input = Input::default();
        if let Ok(Output::Send { headers, .. }) = Output::from_value(Val::obj(object), &input) {
            for (name, value) in headers {
                proptest::prop_assert!(http::HeaderName::from_bytes(name.as_bytes()).is_ok());
                proptest::prop_assert!(http::HeaderValue::from_str(&value).is_ok());
                proptest::prop_assert!(!is_reserved_header(&name));
            }
        }
    }
}

#[test]
fn header_values_are_checked_as_http_checks_them() {
    let mut samples: Vec<String> = (0u32..0x80)
        .filter_map(char::from_u32)
        .map(|c| format!("a{c}b"))
        .collect();
    samples.extend(["", "é", "tab\there", "\u{7f}", "caf\u{e9} \u{1f600}"].map(String::from));
    for value in samples {
        assert_eq!(
            is_header_value(&value),
            http::HeaderValue::from_str(&value).is_ok(),
            "{value:?}"
        );
    }
}

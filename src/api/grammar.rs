//! The exact grammar of every string the admin API parses from a path, a query or a body, each
//! written twice: as the check the handlers run, and as the regular expression the OpenAPI
//! document states for it (the named schemas below). The two accept the same strings: a request
//! the document calls valid is never refused for its shape, and one it calls invalid is always
//! refused (`tests/api_fuzz` sends both kinds). Patterns use only what ECMA-262 and Python's
//! `re` read alike: ASCII classes, `(?:…)`, `{m,n}`, anchors, and (for header names only) a
//! negative lookahead. Property tests check that each pattern's strings pass its check (all but
//! the header names', whose lookahead the test's generator cannot read).

use crate::model::endpoint::RESERVED_HEADERS;
use std::borrow::Cow;

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};

use crate::ids::{DeliveryId, EventId};

/// The characters of a ULID in Crockford's base32, either case (as the ids are parsed).
macro_rules! ulid_chars {
    () => {
        "[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]"
    };
}

/// `evt_` and a ULID. The ULID's first character is at most `7`: 26 characters of base32 hold
/// 130 bits, and a ULID has 128.
pub const EVENT_ID_PATTERN: &str = concat!("^evt_[0-7]", ulid_chars!(), "{25}$");
/// `dlv_` and a ULID.
pub const DELIVERY_ID_PATTERN: &str = concat!("^dlv_[0-7]", ulid_chars!(), "{25}$");
/// A dead-letter page's cursor: when the next row died (Unix ms) and its delivery id.
pub const DEAD_LETTER_CURSOR_PATTERN: &str =
    concat!("^[0-9]{1,19}\\.dlv_[0-7]", ulid_chars!(), "{25}$");
/// The id of a source or an endpoint, and the `source` label of a published event.
pub const ENTRY_ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";

/// The ULID part of a prefixed id: 26 base32 characters, the first at most `7`.
fn ulid_text_ok(rest: &str) -> bool {
    rest.len() == 26
        && rest.as_bytes()[0].is_ascii_digit()
        && rest.as_bytes()[0] <= b'7'
        && ulid::Ulid::from_string(rest).is_ok()
}

/// An event id as [`EVENT_ID_PATTERN`] states it.
pub fn event_id(s: &str) -> Option<EventId> {
    ulid_text_ok(s.strip_prefix(EventId::PREFIX)?)
        .then(|| s.parse().ok())
        .flatten()
}

/// A delivery id as [`DELIVERY_ID_PATTERN`] states it.
pub fn delivery_id(s: &str) -> Option<DeliveryId> {
    ulid_text_ok(s.strip_prefix(DeliveryId::PREFIX)?)
        .then(|| s.parse().ok())
        .flatten()
}

/// A dead-letter cursor as [`DEAD_LETTER_CURSOR_PATTERN`] states it.
pub fn dead_letter_cursor_ok(s: &str) -> bool {
    s.split_once('.').is_some_and(|(ms, id)| {
        (1..=19).contains(&ms.len())
            && ms.bytes().all(|b| b.is_ascii_digit())
            && delivery_id(id).is_some()
    })
}

/// A source or endpoint id, or a published event's `source`, as [`ENTRY_ID_PATTERN`] states.
pub fn entry_id_ok(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A published event's `source`: an entry id, but not `hookgate`
/// ([`crate::model::HOOKGATE_SOURCE`]), whose events only hookgate makes.
pub const PUBLISH_SOURCE_PATTERN: &str = "^(?!hookgate$)[A-Za-z0-9._-]{1,64}$";

/// A published event's `source` as [`PUBLISH_SOURCE_PATTERN`] states it.
pub fn publish_source_ok(s: &str) -> bool {
    entry_id_ok(s) && s != crate::model::HOOKGATE_SOURCE
}

// ---- Times and durations ----

/// Units of a duration, with their length in milliseconds and, for an overlap, how many digits
/// its number may have (so that no overlap exceeds the longest duration a config key takes).
const UNITS: &[(&[&str], u64, usize)] = &[
    (&["ms", "msec", "millis"], 1, 11),
    (&["s", "sec", "secs", "second", "seconds"], 1000, 8),
    (&["m", "min", "mins", "minute", "minutes"], 60_000, 6),
    (&["h", "hr", "hrs", "hour", "hours"], 3_600_000, 4),
    (&["d", "day", "days"], 86_400_000, 3),
    (&["w", "wk", "wks", "week", "weeks"], 604_800_000, 2),
    // 30.44 and 365.25 days, as in config durations.
    (&["M", "month", "months"], 2_630_016_000, 2),
    (&["y", "yr", "yrs", "year", "years"], 31_557_600_000, 1),
];

macro_rules! units_alt {
    () => {
        "ms|msec|millis|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|wk|wks|week|weeks|M|month|months|y|yr|yrs|year|years"
    };
}

/// A calendar date from 0000-01-01 to 9999-12-31 (February 29 only in leap years).
macro_rules! date_re {
    () => {
        concat!(
            "(?:[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])",
            "|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)",
            "|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)"
        )
    };
}

/// `since` and `until`: an RFC 3339 time, or a duration before now.
///
/// - A time is a date, optionally followed by `T` (or `t`, or a space), `hh:mm:ss`, up to 9
///   digits of fraction, and `Z` or an offset `±hh:mm` (none: UTC). A time before 1970 is
///   1970-01-01T00:00:00Z.
/// - A duration is one or more whole numbers each followed by a unit, with nothing between them
///   (`2h`, `1h30m`, `7days`): `ms`, `s`, `m`, `h`, `d`, `w`, `M` (30.44 days), `y` (365.25
///   days), or their longer names. One longer than the time since 1970 reaches back to it.
pub const TIME_PATTERN: &str = concat!(
    "^(?:(?:[0-9]+(?:",
    units_alt!(),
    "))+|",
    date_re!(),
    "(?:[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?)?)$"
);

/// A secret rotation's `overlap`: one whole number and a unit, with at most as many digits as
/// keep it within 3650 days (11 for ms, 8 for s, 6 for m, 4 for h, 3 for d, 2 for w and M, 1
/// for y).
pub const OVERLAP_PATTERN: &str = concat!(
    "^(?:[0-9]{1,11}(?:ms|msec|millis)|[0-9]{1,8}(?:s|sec|secs|second|seconds)",
    "|[0-9]{1,6}(?:m|min|mins|minute|minutes)|[0-9]{1,4}(?:h|hr|hrs|hour|hours)",
    "|[0-9]{1,3}(?:d|day|days)|[0-9]{1,2}(?:w|wk|wks|week|weeks)",
    "|[0-9]{1,2}(?:M|month|months)|[0-9](?:y|yr|yrs|year|years))$"
);

fn unit(name: &str) -> Option<(u64, usize)> {
    UNITS
        .iter()
        .find(|(names, _, _)| names.contains(&name))
        .map(|&(_, ms, digits)| (ms, digits))
}

/// Splits `s` into (digits, unit) pairs: each a non-empty run of ASCII digits and the non-empty
/// run of ASCII letters after it, covering all of `s`.
fn components(s: &str) -> Option<Vec<(&str, &str)>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits_end = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        if digits_end == start || i == digits_end {
            return None;
        }
        out.push((&s[start..digits_end], &s[digits_end..i]));
    }
    (!out.is_empty()).then_some(out)
}

/// A duration of `since`/`until` in milliseconds, saturating.
fn duration_ms(s: &str) -> Option<u64> {
    let mut total: u64 = 0;
    for (digits, name) in components(s)? {
        let (ms, _) = unit(name)?;
        let n = digits.bytes().fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
        total = total.saturating_add(n.saturating_mul(ms));
    }
    Some(total)
}

/// An overlap as [`OVERLAP_PATTERN`] states it.
pub fn overlap(s: &str) -> Option<std::time::Duration> {
    let parts = components(s)?;
    let [(digits, name)] = parts.as_slice() else {
        return None;
    };
    let (ms, max_digits) = unit(name)?;
    if digits.len() > max_digits {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(std::time::Duration::from_millis(n * ms))
}

fn number(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (negative before).
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `hh:mm` of a given maximum hour: minutes since midnight.
fn hh_mm(b: &[u8]) -> Option<i64> {
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let (h, m) = (number(&b[..2])?, number(&b[3..])?);
    (h <= 23 && m <= 59).then_some(i64::from(h * 60 + m))
}

/// An RFC 3339 time (as [`TIME_PATTERN`] states it) in Unix milliseconds, negative before 1970.
fn datetime_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (number(&b[..4])?, number(&b[5..7])?, number(&b[8..10])?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day) * 86_400_000;
    let rest = &b[10..];
    if rest.is_empty() {
        return Some(ms);
    }
    if rest.len() < 9 || !matches!(rest[0], b'T' | b't' | b' ') || rest[6] != b':' {
        return None;
    }
    let minutes = hh_mm(&rest[1..6])?;
    let seconds = number(&rest[7..9]).filter(|s| *s <= 59)?;
    ms += (minutes * 60 + i64::from(seconds)) * 1000;
    let mut rest = &rest[9..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let digits = fraction.iter().take_while(|d| d.is_ascii_digit()).count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        let millis = fraction[..digits]
            .iter()
            .chain(b"00")
            .take(3)
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
        ms += millis;
        rest = &fraction[digits..];
    }
    match rest {
        [] | [b'Z'] | [b'z'] => Some(ms),
        [sign @ (b'+' | b'-'), offset @ ..] => {
            let offset_ms = hh_mm(offset)? * 60_000;
            Some(if *sign == b'+' {
                ms - offset_ms
            } else {
                ms + offset_ms
            })
        }
        _ => None,
    }
}

/// `since` or `until` as [`TIME_PATTERN`] states it, in Unix milliseconds.
pub fn time(s: &str, now_ms: u64) -> Option<u64> {
    if let Some(d) = duration_ms(s) {
        return Some(now_ms.saturating_sub(d));
    }
    datetime_ms(s).map(|ms| u64::try_from(ms).unwrap_or(0))
}

// ---- Secrets and headers ----

/// An endpoint's signing secret: `whsec_` (optional) and the standard, padded base64 of 1 to 64
/// bytes, as `verify::standard_webhooks::decode_secret` reads it. The last character before the
/// padding may carry no bits beyond the key's.
pub const SIGNING_SECRET_PATTERN: &str = concat!(
    "^(?:whsec_)?(?:(?:[A-Za-z0-9+/]{4}){0,21}[A-Za-z0-9+/][AQgw]==",
    "|(?:[A-Za-z0-9+/]{4}){0,20}[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=",
    "|(?:[A-Za-z0-9+/]{4}){1,21})$"
);

/// A signing secret as [`SIGNING_SECRET_PATTERN`] states it.
pub fn signing_secret_ok(s: &str) -> bool {
    crate::verify::standard_webhooks::decode_secret(s).is_ok()
}

// A published event may not carry `content-type` (it is the event's own), the headers
// `model::endpoint::RESERVED_HEADERS` names, or any `hookgate-…` name (either case).

/// Each letter as a class of both cases: `te` is `[Tt][Ee]`.
fn either_case(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A header name a published event may carry: an HTTP token, neither `content-type` nor one of
/// [`RESERVED_HEADERS`], and
/// not starting with `hookgate-`, in either case.
pub fn publish_header_name_pattern() -> String {
    let reserved: Vec<String> = std::iter::once("content-type")
        .chain(RESERVED_HEADERS.iter().copied())
        .map(either_case)
        .collect();
    format!(
        "^(?!(?:{})$)(?!{})[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
        reserved.join("|"),
        either_case("hookgate-")
    )
}

/// A header name as [`publish_header_name_pattern`] states it.
pub fn publish_header_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+.^_`|~-".contains(&b))
        && http::HeaderName::from_bytes(name.as_bytes()).is_ok()
        && !name.eq_ignore_ascii_case("content-type")
        && !crate::model::endpoint::is_reserved_header(name)
}

/// A header value: any characters but the ASCII controls (a tab is allowed).
pub const HEADER_VALUE_PATTERN: &str = "^[^\\x00-\\x08\\x0a-\\x1f\\x7f]*$";

/// A header value as [`HEADER_VALUE_PATTERN`] states it.
pub fn header_value_ok(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// `Idempotency-Key`: 1 to 512 visible ASCII characters, spaces and tabs only inside (HTTP
/// trims them at the ends).
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~](?:[\\t -~]{0,510}[!-~])?$";

/// An `Idempotency-Key` as [`IDEMPOTENCY_KEY_PATTERN`] states it.
pub fn idempotency_key_ok(key: &str) -> bool {
    let visible = |b: &u8| (b'!'..=b'~').contains(b);
    let b = key.as_bytes();
    (1..=512).contains(&b.len())
        && b.first().is_some_and(visible)
        && b.last().is_some_and(visible)
        && b.iter().all(|c| *c == b'\t' || (b' '..=b'~').contains(c))
}

// ---- The named schemas of the document ----

fn string_schema(pattern: impl Into<String>, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .into()
}

macro_rules! named_string {
    ($name:ident, $pattern:expr, $description:literal) => {
        named_string!($name as stringify!($name), $pattern, $description);
    };
    ($name:ident as $schema_name:expr, $pattern:expr, $description:literal) => {
        #[doc = $description]
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                string_schema($pattern, $description)
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($schema_name)
            }
        }
    };
}

named_string!(
    Time,
    TIME_PATTERN,
    "An RFC 3339 time (`2026-11-25T08:00:00Z`; the time of day, its fraction and its offset are optional, and no offset is UTC; before 1970 counts as 1970), or a duration before now: whole numbers with units, nothing between them (`2h`, `1h30m`, `7d`; units ms, s, m, h, d, w, M = 30.44 days, y = 365.25 days, or their longer names)."
);
named_string!(
    Overlap,
    OVERLAP_PATTERN,
    "A whole number and a unit (`24h`, `7d`): at most 11 digits of ms, 8 of s, 6 of m, 4 of h, 3 of d, 2 of w or M, 1 of y."
);
named_string!(
    EventIdText,
    EVENT_ID_PATTERN,
    "An event id: `evt_` and a ULID."
);
named_string!(
    DeliveryIdText,
    DELIVERY_ID_PATTERN,
    "A delivery id: `dlv_` and a ULID."
);
named_string!(
    DeadLetterCursor,
    DEAD_LETTER_CURSOR_PATTERN,
    "The `next_cursor` of the previous page of dead letters."
);
named_string!(
    EntryId,
    ENTRY_ID_PATTERN,
    "1 to 64 characters of A-Z a-z 0-9 - _ ."
);
named_string!(
    PublishSource,
    PUBLISH_SOURCE_PATTERN,
    "1 to 64 characters of A-Z a-z 0-9 - _ ., but not `hookgate` (reserved for hookgate's own events)."
);
named_string!(
    SigningSecret,
    SIGNING_SECRET_PATTERN,
    "`whsec_` (optional) and the standard base64 (padded) of a key of 1 to 64 bytes."
);
named_string!(
    HeaderValue,
    HEADER_VALUE_PATTERN,
    "A header value: no ASCII control characters but tab."
);

/// `status` of an event list: events with a delivery in it.
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // only its schema is used; `params::parse_status` reads the text
pub enum StatusName {
    Pending,
    Delivering,
    Retrying,
    Delivered,
    Dead,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::string::string_regex;

    /// Strings a pattern matches (each is anchored at both ends, which proptest leaves out).
    fn matching(pattern: &str) -> impl Strategy<Value = String> {
        let inner = pattern
            .strip_prefix('^')
            .and_then(|p| p.strip_suffix('$'))
            .expect("anchored");
        string_regex(inner).expect("pattern")
    }

    proptest! {
        #[test]
        fn every_time_the_pattern_allows_is_read(s in matching(TIME_PATTERN)) {
            prop_assert!(time(&s, 1_795_564_800_000).is_some(), "{s:?}");
        }

        #[test]
        fn every_overlap_the_pattern_allows_is_read(s in matching(OVERLAP_PATTERN)) {
            let d = overlap(&s);
            prop_assert!(d.is_some(), "{s:?}");
            prop_assert!(d.unwrap_or_default() <= crate::config::MAX_DURATION, "{s:?}");
        }

        #[test]
        fn every_id_the_patterns_allow_is_read(
            e in matching(EVENT_ID_PATTERN),
            d in matching(DELIVERY_ID_PATTERN),
            c in matching(DEAD_LETTER_CURSOR_PATTERN),
        ) {
            prop_assert!(event_id(&e).is_some(), "{e:?}");
            prop_assert!(delivery_id(&d).is_some(), "{d:?}");
            prop_assert!(dead_letter_cursor_ok(&c), "{c:?}");
        }

        #[test]
        fn every_secret_the_pattern_allows_decodes(s in matching(SIGNING_SECRET_PATTERN)) {
            prop_assert!(signing_secret_ok(&s), "{s:?}");
        }

        #[test]
        fn every_header_value_key_and_label_the_patterns_allow_is_read(
            v in matching(HEADER_VALUE_PATTERN),
            k in matching(IDEMPOTENCY_KEY_PATTERN),
            e in matching(ENTRY_ID_PATTERN),
        ) {
            prop_assert!(header_value_ok(&v), "{v:?}");
            prop_assert!(idempotency_key_ok(&k), "{k:?}");
            prop_assert!(entry_id_ok(&e), "{e:?}");
        }
    }

    #[test]
    fn times_and_durations() {
        let now = 1_795_564_800_000; // 2026-11-25T00:00:00Z
        assert_eq!(time("2h", now), Some(now - 7_200_000));
        assert_eq!(time("1h30m", now), Some(now - 5_400_000));
        assert_eq!(time("99999999999999999999999y", now), Some(0));
        assert_eq!(time("2026-11-25T00:00:00Z", 0), Some(now));
        assert_eq!(time("2026-11-25", 0), Some(now));
        assert_eq!(time("2026-11-25 01:00:00.5+01:00", 0), Some(now + 500));
        assert_eq!(time("2026-11-24t23:00:00-01:00", 0), Some(now));
        assert_eq!(time("1969-12-31T23:59:59Z", 0), Some(0));
        assert_eq!(time("2024-02-29T00:00:00Z", 0), Some(1_709_164_800_000));
        for bad in [
            "",
            "2",
            "h",
            "2 h",
            "1.5h",
            "2h ",
            "2023-02-29",
            "2026-13-01",
            "2026-11-25T24:00:00Z",
            "2026-11-25T00:00:60Z",
            "2026-11-25T00:00Z",
            "2026-11-25T00:00:00.Z",
            "2026-11-25T00:00:00.1234567890Z",
            "2026-11-25T00:00:00+2400",
            "２h",
            "2µs",
            "2ns",
        ] {
            assert_eq!(time(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn overlaps_stay_within_the_longest_duration() {
        assert_eq!(overlap("24h"), Some(std::time::Duration::from_secs(86_400)));
        assert_eq!(
            overlap("999d"),
            Some(std::time::Duration::from_secs(999 * 86_400))
        );
        for bad in ["", "1000d", "10y", "1h30m", "24 h", "0x1h", "-1h"] {
            assert_eq!(overlap(bad), None, "{bad:?}");
        }
        for (_, ms, digits) in UNITS {
            let largest = 10u64.pow(*digits as u32) - 1;
            assert!(std::time::Duration::from_millis(largest * ms) <= crate::config::MAX_DURATION);
        }
    }

    #[test]
    fn ids_are_read_in_either_case_but_not_past_128_bits() {
        let id = EventId(u128::MAX).to_string();
        assert_eq!(event_id(&id), Some(EventId(u128::MAX)));
        assert_eq!(event_id(&id.to_lowercase()), Some(EventId(u128::MAX)));
        assert_eq!(event_id(&id.replacen("evt_7", "evt_8", 1)), None);
        assert_eq!(event_id("evt_"), None);
        assert!(dead_letter_cursor_ok(&format!("12.{}", DeliveryId(5))));
        assert!(!dead_letter_cursor_ok(&format!("+12.{}", DeliveryId(5))));
        assert!(!dead_letter_cursor_ok(&format!(
            "12345678901234567890.{}",
            DeliveryId(5)
        )));
    }

    #[test]
    fn reserved_and_invalid_header_names_are_refused() {
        for bad in [
            "",
            "Content-Type",
            "HOST",
            "webhook-id",
            "Hookgate-Source",
            "a b",
            "é",
        ] {
            assert!(!publish_header_name_ok(bad), "{bad:?}");
        }
        assert!(publish_header_name_ok("X-Trace-Id"));
        assert!(publish_header_name_ok("hookgate"));
        assert!(publish_source_ok("hookgate.x") && publish_source_ok("Hookgate"));
        assert!(!publish_source_ok("hookgate") && !publish_source_ok(""));
        assert!(header_value_ok("a\tb é"));
        assert!(!header_value_ok("a\nb"));
    }
}

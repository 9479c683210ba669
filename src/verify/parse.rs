//! Strict parsing shared by the schemes: single headers, Unix timestamps and their tolerance,
//! and the `key=value` signature headers of Stripe and Paddle. Strict, because what is MACed
//! must be exactly what the sender formatted, and a header sent twice is not a header we can
//! say was signed.

use http::HeaderMap;

use super::{HmacAlgorithm, KeyBytes, MAX_SIGNATURES, VerifyError, mac_matches};

/// Splits `k=v<sep>k=v…` (Stripe's and Paddle's signature headers); an item without `=` makes
/// the header malformed.
pub fn key_values(value: &str, sep: char) -> Result<Vec<(&str, &str)>, VerifyError> {
    value
        .split(sep)
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .take(4 * MAX_SIGNATURES)
        .map(|item| {
            item.split_once('=').ok_or_else(|| {
                VerifyError::MalformedSignature(format!("{item:?} is not key=value"))
            })
        })
        .collect()
}

/// A `key=value` signature header with one timestamp and any number of hex HMAC-SHA256
/// signatures of `timestamp <joiner> body`: Stripe's (`t=…,v1=…`) and Paddle's (`ts=…;h1=…`).
#[derive(Debug, Clone, Copy)]
pub struct TimestampedHeader {
    pub name: &'static str,
    pub separator: char,
    pub ts_key: &'static str,
    pub sig_key: &'static str,
    pub joiner: &'static [u8],
}

/// Verifies a [`TimestampedHeader`]: any key matching any signature of the accepted kind passes;
/// other kinds are ignored; `now_secs = None` skips the clock.
pub fn verify_timestamped(
    layout: &TimestampedHeader,
    keys: &[KeyBytes],
    tolerance: u64,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: Option<i64>,
) -> Result<(), VerifyError> {
    let value = required_header(headers, layout.name)?;
    let mut ts_text = None;
    let mut candidates = Vec::new();
    for (k, v) in key_values(value, layout.separator)? {
        if k == layout.ts_key {
            if ts_text.is_some() {
                return Err(VerifyError::MalformedSignature(format!(
                    "{} appears more than once",
                    layout.ts_key
                )));
            }
            ts_text = Some(v);
        } else if k == layout.sig_key && candidates.len() < MAX_SIGNATURES {
            // An undecodable candidate is just not a match.
            if let Ok(tag) = hex::decode(v) {
                candidates.push(tag);
            }
        }
    }
    let ts_text = ts_text.ok_or_else(|| {
        VerifyError::MalformedSignature(format!("no {}= timestamp", layout.ts_key))
    })?;
    let ts = parse_timestamp(ts_text)?;
    if let Some(now) = now_secs {
        check_tolerance(ts, now, tolerance)?;
    }
    let parts: [&[u8]; 3] = [ts_text.as_bytes(), layout.joiner, body];
    let matched = keys.iter().any(|k| {
        candidates
            .iter()
            .any(|tag| mac_matches(HmacAlgorithm::Sha256, k, &parts, tag))
    });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::BadSignature)
    }
}

/// The value of a header that must appear at most once, as visible ASCII.
/// `Ok(None)` when absent; a repeated or non-ASCII header is malformed.
pub fn single_header<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> Result<Option<&'a str>, VerifyError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(VerifyError::MalformedSignature(format!(
            "header {name} appears more than once"
        )));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| VerifyError::MalformedSignature(format!("header {name} is not visible ASCII")))
}

/// Like [`single_header`], but absence is [`VerifyError::MissingSignature`] and empty is malformed.
pub fn required_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, VerifyError> {
    match single_header(headers, name)? {
        None => Err(VerifyError::MissingSignature(name.to_string())),
        Some("") => Err(VerifyError::MalformedSignature(format!(
            "header {name} is empty"
        ))),
        Some(v) => Ok(v),
    }
}

/// Parses a Unix timestamp strictly: ASCII digits only, no sign, no leading zero, so that the
/// string we MAC is exactly the one the sender formatted.
pub fn parse_timestamp(s: &str) -> Result<i64, VerifyError> {
    let bad = || {
        VerifyError::MalformedSignature(format!("timestamp {s:?} is not a Unix time in seconds"))
    };
    if s.is_empty()
        || s.len() > 12
        || !s.bytes().all(|b| b.is_ascii_digit())
        || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

/// Refuses a timestamp more than `tolerance` seconds away from now, in either direction.
pub fn check_tolerance(ts: i64, now: i64, tolerance: u64) -> Result<(), VerifyError> {
    if now.abs_diff(ts) > tolerance {
        return Err(VerifyError::StaleTimestamp(tolerance));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_strictly() {
        assert_eq!(parse_timestamp("1614265330"), Ok(1_614_265_330));
        assert_eq!(parse_timestamp("0"), Ok(0));
        for bad in ["", "-1", "+1", "0123", "1.5", " 1", "1e9", "9999999999999"] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn tolerance_is_inclusive_both_ways() {
        assert!(check_tolerance(1000, 1300, 300).is_ok());
        assert!(check_tolerance(1000, 700, 300).is_ok());
        assert!(check_tolerance(1000, 1301, 300).is_err());
        assert!(check_tolerance(1000, 699, 300).is_err());
    }

    #[test]
    fn repeated_headers_are_malformed() {
        let mut h = HeaderMap::new();
        h.append("webhook-id", "a".parse().expect("value"));
        h.append("webhook-id", "b".parse().expect("value"));
        assert!(matches!(
            single_header(&h, "webhook-id"),
            Err(VerifyError::MalformedSignature(_))
        ));
        assert_eq!(
            required_header(&h, "nope"),
            Err(VerifyError::MissingSignature("nope".into()))
        );
    }
}

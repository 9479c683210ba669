//! The words a source's verification is configured with: HMAC algorithms and encodings, and
//! field selectors (where a value sits in a request). They live here, beside the schemes that
//! give them meaning, and config's TOML schema reads them; so config depends on verify and
//! never the other way round. Scheme names themselves are [`super::SchemeKind`], made by the
//! registry in `verify.rs`.

use serde::Deserialize;

/// The hash under an HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

/// How a MAC is written in a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacEncoding {
    Hex,
    Base64,
}

/// Where to find a value in a request: a header, or a JSON pointer into the body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum FieldRef {
    Header(String),
    Json(String),
}

impl FieldRef {
    pub fn as_field(&self) -> Field<'_> {
        match self {
            FieldRef::Header(h) => Field::Header(h),
            FieldRef::Json(p) => Field::Json(p),
        }
    }
}

/// A borrowed [`FieldRef`], so that scheme defaults can be `'static` tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    Header(&'a str),
    Json(&'a str),
}

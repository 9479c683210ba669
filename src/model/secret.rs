//! Secrets and keys. **Neither shows its value in `Debug`**, so neither can leak through logs or
//! error messages, and both are wiped from memory when dropped.

use std::fmt;

use serde::Deserialize;

/// A secret string. Its `Debug` never shows the value, so it cannot leak through logs, and it
/// is wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself: call only where it is used as key material or compared.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Decoded key material. Like [`Secret`], its `Debug` never shows the bytes and it is wiped
/// when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub Vec<u8>);

impl Key {
    /// The key itself: call only where it keys a MAC or is handed to its owner.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(***)")
    }
}

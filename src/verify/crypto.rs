//! The MAC primitives every HMAC scheme uses, and constant-time equality for the schemes that
//! compare a secret itself. **MACs are compared in constant time** (`Mac::verify_slice`), and
//! so are secrets ([`constant_time_eq`] hashes both sides first, so lengths do not leak either).

use ::hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::HmacAlgorithm;

/// Equality of two secrets in time independent of their contents and lengths (both are hashed
/// first, so a length mismatch says nothing either).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    Sha256::digest(a).ct_eq(&Sha256::digest(b)).into()
}

fn hmac_of<D>(key: &[u8], parts: &[&[u8]]) -> Option<Hmac<D>>
where
    D: ::hmac::EagerHash,
    Hmac<D>: KeyInit + Mac,
{
    // HMAC takes keys of any length, so this is always `Some`.
    let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key).ok()?;
    for p in parts {
        mac.update(p);
    }
    Some(mac)
}

/// The MAC of the concatenated `parts` under `key`.
pub fn mac(alg: HmacAlgorithm, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let out = match alg {
        HmacAlgorithm::Sha1 => {
            hmac_of::<sha1::Sha1>(key, parts).map(|m| m.finalize().into_bytes().to_vec())
        }
        HmacAlgorithm::Sha256 => {
            hmac_of::<sha2::Sha256>(key, parts).map(|m| m.finalize().into_bytes().to_vec())
        }
        HmacAlgorithm::Sha512 => {
            hmac_of::<sha2::Sha512>(key, parts).map(|m| m.finalize().into_bytes().to_vec())
        }
    };
    out.unwrap_or_default()
}

/// Whether `tag` is the MAC of `parts` under `key`, compared in constant time.
pub fn mac_matches(alg: HmacAlgorithm, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
    match alg {
        HmacAlgorithm::Sha1 => {
            hmac_of::<sha1::Sha1>(key, parts).is_some_and(|m| m.verify_slice(tag).is_ok())
        }
        HmacAlgorithm::Sha256 => {
            hmac_of::<sha2::Sha256>(key, parts).is_some_and(|m| m.verify_slice(tag).is_ok())
        }
        HmacAlgorithm::Sha512 => {
            hmac_of::<sha2::Sha512>(key, parts).is_some_and(|m| m.verify_slice(tag).is_ok())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_matches_only_the_right_tag() {
        let tag = mac(HmacAlgorithm::Sha256, b"k", &[b"a", b"b"]);
        assert!(mac_matches(HmacAlgorithm::Sha256, b"k", &[b"ab"], &tag));
        assert!(!mac_matches(
            HmacAlgorithm::Sha256,
            b"k",
            &[b"ab"],
            &tag[..31]
        ));
        assert!(!mac_matches(HmacAlgorithm::Sha256, b"j", &[b"ab"], &tag));
    }
}

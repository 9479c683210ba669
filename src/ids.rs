//! Identifiers: event and delivery ids are ULIDs, so they sort by creation time, and they are
//! stored as `u128` keys. Their text form carries a prefix (`evt_`, `dlv_`) so that an operator
//! can tell them apart at a glance.

use std::fmt;
use std::str::FromStr;

use ulid::Ulid;

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u128);

        impl $name {
            /// The prefix of the text form.
            pub const PREFIX: &'static str = $prefix;

            /// Milliseconds since the Unix epoch at which the id was made.
            pub fn timestamp_ms(self) -> u64 {
                Ulid(self.0).timestamp_ms()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, Ulid(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                let rest = s.strip_prefix($prefix).ok_or(InvalidId)?;
                Ulid::from_string(rest)
                    .map(|u| Self(u.0))
                    .map_err(|_| InvalidId)
            }
        }
    };
}

prefixed_id!(
    EventId,
    "evt_",
    "An event: one accepted inbound webhook or published message."
);
prefixed_id!(DeliveryId, "dlv_", "One event on its way to one endpoint.");

/// A string that is not a well-formed id of the expected kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a well-formed id")]
pub struct InvalidId;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_text() {
        let id = EventId(Ulid::from_parts(1_700_000_000_000, 42).0);
        let text = id.to_string();
        assert!(text.starts_with("evt_"));
        assert_eq!(text.parse::<EventId>(), Ok(id));
        assert_eq!(id.timestamp_ms(), 1_700_000_000_000);
    }

    #[test]
    fn rejects_wrong_prefix_and_garbage() {
        let id = DeliveryId(Ulid::from_parts(1, 2).0).to_string();
        assert!(id.parse::<EventId>().is_err());
        assert!("evt_".parse::<EventId>().is_err());
        assert!("evt_not-a-ulid".parse::<EventId>().is_err());
    }
}

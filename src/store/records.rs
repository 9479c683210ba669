//! What the store keeps, and how each record is encoded on disk: one version byte, then the
//! record in postcard (compact, varint-based). A version we do not know is an error, never a
//! guess, so a future format change can migrate explicitly.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::StoreError;

/// The format version written before every record.
pub const RECORD_VERSION: u8 = 1;

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs into a Vec cannot fail; an empty record would fail to decode
    // loudly rather than silently.
    postcard::to_extend(value, vec![RECORD_VERSION]).unwrap_or_default()
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, rest)) => postcard::from_bytes(rest)
            .map_err(|e| StoreError::Corrupt(format!("undecodable record: {e}"))),
        Some((v, _)) => Err(StoreError::Corrupt(format!(
            "record version {v} is not known to this build"
        ))),
        None => Err(StoreError::Corrupt("empty record".into())),
    }
}

/// Delivery status values, as SPEC names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryStatus {
    Pending,
    Delivering,
    Retrying,
    Delivered,
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivering => "delivering",
            Self::Retrying => "retrying",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    /// Delivered and dead deliveries are finished: nothing schedules them again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Dead)
    }
}

/// An event's metadata (its body and headers are kept apart, in the payloads table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub source: String,
    pub event_type: Option<String>,
    pub received_ms: u64,
    pub dedup_key: Option<String>,
    /// One delivery per endpoint that matched at ingest: (delivery id, endpoint id).
    pub deliveries: Vec<(u128, String)>,
}

/// The bytes as they arrived: every request header, and the body exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadRecord {
    pub headers: Vec<(String, serde_bytes::ByteBuf)>,
    // As bytes, not a sequence of u8: the same encoding, but one copy instead of a call per
    // byte, both ways.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// A [`PayloadRecord`] borrowed from the request, encoded identically: ingest writes the
/// body and headers without copying them first.
#[derive(Serialize)]
pub struct PayloadRef<'a> {
    pub headers: Vec<(&'a str, &'a serde_bytes::Bytes)>,
    #[serde(with = "serde_bytes")]
    pub body: &'a [u8],
}

impl PayloadRecord {
    /// The first value of a header, by lower-case name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub event_id: u128,
    pub endpoint_id: String,
    pub status: DeliveryStatus,
    /// Attempts made and recorded so far.
    pub attempts: u32,
    /// When it is next due; while `Delivering`, when its lease expires. Mirrors its key in the
    /// due index.
    pub due_ms: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    /// The retry cycle: `attempts` when it began, and when. A replay or a manual retry starts a
    /// new cycle, so `max_attempts` and `max_age` count from there, while the attempt log (and
    /// `attempts`) keeps the whole history.
    pub cycle_base: u32,
    pub cycle_started_ms: u64,
}

impl DeliveryRecord {
    /// Attempts made in the current retry cycle.
    pub fn cycle_attempts(&self) -> u32 {
        self.attempts.saturating_sub(self.cycle_base)
    }
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub at_ms: u64,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// The first bytes of the response body.
    pub response_excerpt: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_carry_a_version() {
        let rec = DeliveryRecord {
            event_id: 7,
            endpoint_id: "billing".into(),
            status: DeliveryStatus::Retrying,
            attempts: 2,
            due_ms: 10,
            created_ms: 1,
            updated_ms: 2,
            last_status_code: Some(503),
            last_error: Some("HTTP 503".into()),
            cycle_base: 0,
            cycle_started_ms: 1,
        };
        let bytes = encode(&rec);
        assert_eq!(bytes[0], RECORD_VERSION);
        assert_eq!(decode::<DeliveryRecord>(&bytes), Ok(rec));
    }

    #[test]
    fn payloads_keep_the_encoding_of_earlier_builds() {
        // Version 1 as first written: bytes as sequences of u8.
        #[derive(Serialize)]
        struct Before {
            headers: Vec<(String, Vec<u8>)>,
            body: Vec<u8>,
        }
        let before = encode(&Before {
            headers: vec![("webhook-id".into(), b"msg_1".to_vec())],
            body: (0..=255u8).collect(),
        });
        let now = encode(&PayloadRef {
            headers: vec![("webhook-id", serde_bytes::Bytes::new(b"msg_1"))],
            body: &(0..=255u8).collect::<Vec<_>>(),
        });
        assert_eq!(before, now);
        let decoded: PayloadRecord = decode(&before).expect("decodes");
        assert_eq!(decoded.header("webhook-id"), Some(&b"msg_1"[..]));
        assert_eq!(decoded.body, (0..=255u8).collect::<Vec<_>>());
    }

    #[test]
    fn unknown_versions_and_garbage_are_errors() {
        let mut bytes = encode(&EventRecord {
            source: "s".into(),
            event_type: None,
            received_ms: 0,
            dedup_key: None,
            deliveries: vec![],
        });
        bytes[0] = 99;
        assert!(matches!(
            decode::<EventRecord>(&bytes),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            decode::<EventRecord>(&[]),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            decode::<EventRecord>(&[RECORD_VERSION, 0xff]),
            Err(StoreError::Corrupt(_))
        ));
    }
}

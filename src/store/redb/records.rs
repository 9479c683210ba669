//! What the redb store keeps, and how each record is encoded on disk: one version byte, then
//! the record in postcard (compact, varint-based). A version we do not know is an error, never
//! a guess, so a future format change can migrate explicitly.
//!
//! **These records are the redb backend's own**: the rest of hookgate sees the model's types
//! (`model::event`), converted here at the store's edge, so the on-disk format cannot leak
//! into the API or the rules, and a model change cannot silently change the format (the
//! golden test below pins its bytes).

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::StoreError;
use crate::ids::{DeliveryId, EventId};
use crate::model::event::{Attempt, Delivery, DeliveryStatus, Event, Payload};
use crate::store::health::{Health, Probe, State};

/// The format version written before every record.
pub(super) const RECORD_VERSION: u8 = 1;
/// The version of a delivery record that carries a [`DeliveryExt`] after the version-1
/// fields. Only deliveries that need it (ordered, blocked, or held) are written so: every
/// other record keeps version 1's bytes, which earlier builds read.
const DELIVERY_EXT_VERSION: u8 = 2;
/// The version of a payload record that carries the request's query string after the
/// version-1 fields. Only payloads that arrived with a query are written so: every other one
/// keeps version 1's bytes, which earlier builds read, and ingest pays nothing for it.
const PAYLOAD_QUERY_VERSION: u8 = 2;

pub(super) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs into a Vec cannot fail; an empty record would fail to decode
    // loudly rather than silently.
    postcard::to_extend(value, vec![RECORD_VERSION]).unwrap_or_default()
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    decode_borrowed(bytes)
}

/// [`decode`] into a record that borrows from `bytes` (no copy of its byte fields).
pub(super) fn decode_borrowed<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&RECORD_VERSION, rest)) => postcard::from_bytes(rest)
            .map_err(|e| StoreError::Corrupt(format!("undecodable record: {e}"))),
        Some((v, _)) => Err(StoreError::Corrupt(format!(
            "record version {v} is not known to this build"
        ))),
        None => Err(StoreError::Corrupt("empty record".into())),
    }
}

/// A delivery's status on disk. Its own type, in the order the format has always had
/// (postcard writes the variant's index), so the model's [`DeliveryStatus`] can change
/// without changing the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum StatusRecord {
    Pending,
    Delivering,
    Retrying,
    Delivered,
    Dead,
}

impl From<StatusRecord> for DeliveryStatus {
    fn from(s: StatusRecord) -> Self {
        match s {
            StatusRecord::Pending => Self::Pending,
            StatusRecord::Delivering => Self::Delivering,
            StatusRecord::Retrying => Self::Retrying,
            StatusRecord::Delivered => Self::Delivered,
            StatusRecord::Dead => Self::Dead,
        }
    }
}

impl From<DeliveryStatus> for StatusRecord {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => Self::Pending,
            DeliveryStatus::Delivering => Self::Delivering,
            DeliveryStatus::Retrying => Self::Retrying,
            DeliveryStatus::Delivered => Self::Delivered,
            DeliveryStatus::Dead => Self::Dead,
        }
    }
}

/// An event's metadata (its body and headers are kept apart, in the payloads table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct EventRecord {
    pub source: String,
    pub event_type: Option<String>,
    pub received_ms: u64,
    pub dedup_key: Option<String>,
    /// One delivery per endpoint that matched at ingest: (delivery id, endpoint id).
    pub deliveries: Vec<(u128, String)>,
}

impl EventRecord {
    /// The event this record keeps under key `id`.
    pub fn into_model(self, id: u128) -> Event {
        Event {
            id: EventId(id),
            source: self.source,
            event_type: self.event_type,
            received_ms: self.received_ms,
            dedup_key: self.dedup_key,
            deliveries: self
                .deliveries
                .into_iter()
                .map(|(d, e)| (DeliveryId(d), e))
                .collect(),
        }
    }
}

/// The bytes as they arrived: every request header, the query string, and the body exactly.
/// Encoded by [`PayloadRecord::encode`] (or [`PayloadRef::encode`]) and read by
/// [`PayloadRecord::decode`], not the generic pair: version 1 is the headers and body, and
/// version 2 appends the query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PayloadRecord {
    pub headers: Vec<(String, serde_bytes::ByteBuf)>,
    // As bytes, not a sequence of u8: the same encoding, but one copy instead of a call per
    // byte, both ways.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// Read from, and written as, the version-2 tail; `""` for version 1.
    #[serde(skip)]
    pub query: String,
}

impl PayloadRecord {
    /// A record of either version.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let (mut rec, query) = decode_payload::<Self, String>(bytes)?;
        rec.query = query.unwrap_or_default();
        Ok(rec)
    }

    /// The record's bytes: version 1 without a query, else version 2.
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        encode_payload(self, &self.query)
    }
}

/// A [`PayloadRecord`] borrowed from the request, encoded identically: ingest writes the
/// body, headers and query without copying them first, and the listing's `contains` filter
/// reads a stored body without copying it.
#[derive(Serialize, Deserialize)]
pub(super) struct PayloadRef<'a> {
    #[serde(borrow)]
    pub headers: Vec<(&'a str, &'a serde_bytes::Bytes)>,
    #[serde(with = "serde_bytes")]
    pub body: &'a [u8],
    /// As [`PayloadRecord::query`].
    #[serde(skip)]
    pub query: &'a str,
}

impl<'a> PayloadRef<'a> {
    /// The record's bytes, the same as [`PayloadRecord::encode`]'s.
    pub fn encode(&self) -> Vec<u8> {
        encode_payload(self, self.query)
    }

    /// A record of either version, borrowed from `bytes`.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, StoreError> {
        let (mut rec, query) = decode_payload::<Self, &'a str>(bytes)?;
        rec.query = query.unwrap_or_default();
        Ok(rec)
    }
}

/// A payload's fields (either form), then its query as version 2's tail when it has one.
fn encode_payload<T: Serialize>(fields: &T, query: &str) -> Vec<u8> {
    if query.is_empty() {
        return encode(fields);
    }
    // As `encode`: serializing into a Vec cannot fail, and an empty record fails loudly.
    let out = postcard::to_extend(fields, vec![PAYLOAD_QUERY_VERSION]).unwrap_or_default();
    postcard::to_extend(query, out).unwrap_or_default()
}

/// A payload's fields and, for version 2, its query (`None` for version 1).
fn decode_payload<'a, T: Deserialize<'a>, Q: Deserialize<'a>>(
    bytes: &'a [u8],
) -> Result<(T, Option<Q>), StoreError> {
    let bad = |e: postcard::Error| StoreError::Corrupt(format!("undecodable payload: {e}"));
    match bytes.split_first() {
        Some((&PAYLOAD_QUERY_VERSION, rest)) => {
            let (fields, tail) = postcard::take_from_bytes::<T>(rest).map_err(bad)?;
            Ok((fields, Some(postcard::from_bytes::<Q>(tail).map_err(bad)?)))
        }
        _ => Ok((decode_borrowed(bytes)?, None)),
    }
}

impl From<PayloadRecord> for Payload {
    fn from(p: PayloadRecord) -> Self {
        Payload {
            headers: p
                .headers
                .into_iter()
                .map(|(n, v)| (n, v.into_vec()))
                .collect(),
            query: p.query,
            body: bytes::Bytes::from(p.body),
        }
    }
}

/// One event on its way to one endpoint (its id is its key). Encoded by
/// [`DeliveryRecord::encode`], not the generic [`encode`]: version 1 is these fields, and
/// version 2 appends a [`DeliveryExt`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct DeliveryRecord {
    pub event_id: u128,
    pub endpoint_id: String,
    pub status: StatusRecord,
    pub attempts: u32,
    /// Mirrors its key in the due index while not final.
    pub due_ms: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub cycle_base: u32,
    pub cycle_started_ms: u64,
    /// Read from, and written as, the version-2 tail; the default for version 1.
    #[serde(skip)]
    pub ext: DeliveryExt,
}

/// What version 2 of a delivery record adds: its order key and place, whether it waits
/// behind its key's head, and the held-time clock at its cycle's start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct DeliveryExt {
    pub order: Option<(String, u64)>,
    pub blocked: bool,
    pub cycle_held_ms: u64,
}

impl DeliveryRecord {
    /// The record's bytes: version 1 when its extension is the default, else version 2.
    pub fn encode(&self) -> Vec<u8> {
        if self.ext == DeliveryExt::default() {
            return encode(self);
        }
        let mut out = postcard::to_extend(self, vec![DELIVERY_EXT_VERSION]).unwrap_or_default();
        out = postcard::to_extend(&self.ext, out).unwrap_or_default();
        out
    }

    /// A record of either version.
    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = |e: postcard::Error| StoreError::Corrupt(format!("undecodable record: {e}"));
        match bytes.split_first() {
            Some((&DELIVERY_EXT_VERSION, rest)) => {
                let (mut rec, tail) = postcard::take_from_bytes::<Self>(rest).map_err(bad)?;
                rec.ext = postcard::from_bytes(tail).map_err(bad)?;
                Ok(rec)
            }
            _ => decode(bytes),
        }
    }

    /// The delivery this record keeps under key `id`.
    pub fn into_model(self, id: u128) -> Delivery {
        Delivery {
            id: DeliveryId(id),
            event_id: EventId(self.event_id),
            endpoint_id: self.endpoint_id,
            status: self.status.into(),
            attempts: self.attempts,
            due_ms: self.due_ms,
            created_ms: self.created_ms,
            updated_ms: self.updated_ms,
            last_status_code: self.last_status_code,
            last_error: self.last_error,
            cycle_base: self.cycle_base,
            cycle_started_ms: self.cycle_started_ms,
            order: self.ext.order,
            blocked: self.ext.blocked,
            cycle_held_ms: self.ext.cycle_held_ms,
        }
    }
}

impl From<Delivery> for DeliveryRecord {
    fn from(d: Delivery) -> Self {
        DeliveryRecord {
            event_id: d.event_id.0,
            endpoint_id: d.endpoint_id,
            status: d.status.into(),
            attempts: d.attempts,
            due_ms: d.due_ms,
            created_ms: d.created_ms,
            updated_ms: d.updated_ms,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            cycle_base: d.cycle_base,
            cycle_started_ms: d.cycle_started_ms,
            ext: DeliveryExt {
                order: d.order,
                blocked: d.blocked,
                cycle_held_ms: d.cycle_held_ms,
            },
        }
    }
}

/// An endpoint's breaker (`store::health::Health`), in `endpoint_health` under its id.
/// Absent: closed since the endpoint was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct HealthRecord {
    /// `State::code`: 0 closed, 1 open, 2 half-open, 3 disabled.
    pub state: u8,
    pub since_ms: u64,
    pub until_ms: u64,
    pub trips: u32,
    pub failing_since_ms: Option<u64>,
    pub held_total_ms: u64,
    pub held_from_ms: Option<u64>,
    /// (delivery id, lease token, lease until).
    pub probe: Option<(u128, u64, u64)>,
}

impl From<&Health> for HealthRecord {
    fn from(h: &Health) -> Self {
        HealthRecord {
            state: h.state.code(),
            since_ms: h.since_ms,
            until_ms: h.until_ms,
            trips: h.trips,
            failing_since_ms: h.failing_since_ms,
            held_total_ms: h.held_total_ms,
            held_from_ms: h.held_from_ms,
            probe: h.probe.map(|p| (p.delivery_id.0, p.token, p.until_ms)),
        }
    }
}

impl HealthRecord {
    /// The health it keeps; an unknown state code is a corrupt record.
    pub fn into_model(self) -> Result<Health, StoreError> {
        let state = State::from_code(self.state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown breaker state {}", self.state)))?;
        Ok(Health {
            state,
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            trips: self.trips,
            failing_since_ms: self.failing_since_ms,
            held_total_ms: self.held_total_ms,
            held_from_ms: self.held_from_ms,
            probe: self.probe.map(|(id, token, until_ms)| Probe {
                delivery_id: DeliveryId(id),
                token,
                until_ms,
            }),
        })
    }
}

/// An operational event waiting in `ops_outbox` (see `model::ops`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct OpsRecord {
    pub at_ms: u64,
    pub event_type: String,
    pub subject: Option<String>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct AttemptRecord {
    pub at_ms: u64,
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub error: Option<String>,
    pub response_excerpt: Vec<u8>,
}

impl From<AttemptRecord> for Attempt {
    fn from(a: AttemptRecord) -> Self {
        Attempt {
            at_ms: a.at_ms,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            error: a.error,
            response_excerpt: a.response_excerpt,
        }
    }
}

impl From<&Attempt> for AttemptRecord {
    fn from(a: &Attempt) -> Self {
        AttemptRecord {
            at_ms: a.at_ms,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            error: a.error.clone(),
            response_excerpt: a.response_excerpt.clone(),
        }
    }
}

#[cfg(test)]
mod tests;

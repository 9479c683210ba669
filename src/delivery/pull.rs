//! Pull endpoints (`kind = "pull"`): consumers take deliveries instead of receiving POSTs.
//!
//! A pull endpoint has no lane. Its deliveries are routed, filtered, stored, retried,
//! dead-lettered and replayed like any other's; a consumer takes the due ones with
//! [`receive`], which **leases them for its visibility timeout under one token, committed
//! before the consumer hears of them** (`ClaimLimits::pull`). Each message's receipt names
//! its delivery and that token. Then:
//! - [`settle`] with [`Settle::Ack`] records the attempt delivered; with [`Settle::Nack`], a
//!   failed attempt, due again after the delay asked for (or the endpoint's backoff), dead
//!   once the retry policy gives up;
//! - [`extend`] prolongs the leases.
//!
//! **Acks, nacks and extends are fenced by their receipt** (`Completion::strict`): one whose
//! lease is no longer current (settled, or run out and taken again) changes nothing and is
//! reported stale. **A lease that runs out counts as a failed attempt**: the next receive
//! that finds the delivery due again records the attempt ("lease expired") and schedules it
//! by the retry policy, like a nack without a delay. Leases outlive a restart of the
//! gateway, on either backend, and run out as usual.
//!
//! The rules (what a nack schedules, receipts' text) are pure and tested here; the rest
//! is the store's calls.

use std::time::Duration;

use bytes::Bytes;
use rand::Rng;

use super::retry::{self, Outcome};
use crate::clock::SharedClock;
use crate::ids::{DeliveryId, EventId};
use crate::model::Endpoint;
use crate::model::event::Attempt;
use crate::store::{ClaimLimits, Completion, DueDelivery, Held, Next, Store, StoreError};
use crate::telemetry::{Metrics, Settled};

/// The most messages one receive takes.
pub const MAX_MESSAGES: usize = 100;
/// The longest a receive waits for a message.
pub const MAX_WAIT: Duration = Duration::from_secs(60);
/// The longest visibility timeout (a lease) a consumer may ask for.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// The visibility timeout when a consumer names none.
pub const DEFAULT_VISIBILITY: Duration = Duration::from_secs(30);
/// How often a waiting receive looks again with no wake-up (another node's commit, a pause
/// lifted, a lease run out).
const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// The error a lease that ran out records as its attempt's.
pub const EXPIRED: &str = "lease expired: the consumer neither acked nor nacked it in time";

/// What a consumer holds to ack, nack or extend one message: its delivery and lease token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt {
    pub delivery_id: DeliveryId,
    pub token: u64,
}

impl Receipt {
    /// `<delivery id>.<token, 16 hex digits>`.
    pub fn encode(&self) -> String {
        format!("{}.{:016x}", self.delivery_id, self.token)
    }

    /// The receipt `text` encodes, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        let (id, token) = text.rsplit_once('.')?;
        if token.len() != 16 {
            return None;
        }
        Some(Receipt {
            delivery_id: id.parse().ok()?,
            token: u64::from_str_radix(token, 16).ok()?,
        })
    }

    fn held(&self) -> Held {
        Held {
            delivery_id: self.delivery_id,
            lease_token: Some(self.token),
        }
    }
}

/// One message as a consumer gets it: the delivery as it would be POSTed (headers signed
/// with the endpoint's key), its attempt number and its receipt.
#[derive(Debug, Clone)]
pub struct Message {
    pub receipt: Receipt,
    pub event_id: EventId,
    pub event_type: Option<String>,
    pub source: String,
    /// This attempt's number (1 the first time; a nack or a lease run out adds one).
    pub attempt: u32,
    pub received_ms: u64,
    /// Until when it is leased to this consumer.
    pub visible_at_ms: u64,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What a receive asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receive {
    pub max: usize,
    pub wait: Duration,
    pub visibility: Duration,
}

/// What a consumer says of its messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    Ack,
    /// Failed: due again after `delay` (none: the endpoint's backoff), with `reason` recorded.
    Nack {
        delay: Option<Duration>,
        reason: Option<String>,
    },
}

/// What the pull calls use of the gateway.
pub struct Pull<'a> {
    pub store: &'a Store,
    pub clock: &'a SharedClock,
    pub metrics: &'a Metrics,
    pub routes: &'a crate::filter::RouteTable,
}

/// What follows a nack, by the retry policy: dead once it gives up (`max_attempts`,
/// `max_age`), else due after `delay` exactly, or after the policy's jittered backoff.
pub fn after_nack(
    policy: &crate::model::RetryPolicy,
    cycle_attempts_made: u32,
    delay: Option<Duration>,
    error: &str,
    (now_ms, cycle_started_ms): (u64, u64),
    rng: &mut impl Rng,
) -> Next {
    let Some(delay) = delay else {
        let failed = Outcome::Failed {
            retry_after: None,
            error: error.to_string(),
        };
        return retry::decide(
            policy,
            cycle_attempts_made,
            &failed,
            now_ms,
            cycle_started_ms,
            rng,
        );
    };
    let at = now_ms.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
    retry::retry_at(policy, cycle_attempts_made, at, cycle_started_ms, error)
}

/// When a lease taken (or prolonged) at `now_ms` for `visibility` runs out.
fn lease_until(now_ms: u64, visibility: Duration) -> u64 {
    now_ms.saturating_add(
        u64::try_from(visibility.min(MAX_VISIBILITY).as_millis()).unwrap_or(u64::MAX),
    )
}

impl Pull<'_> {
    /// Takes up to `req.max` due messages of `endpoint`, waiting up to `req.wait` for one
    /// (woken by the store's commits); none once `stop` turns or while `paused()` says so.
    pub async fn receive(
        &self,
        endpoint: &Endpoint,
        req: Receive,
        paused: impl Fn() -> bool,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<Vec<Message>, StoreError> {
        let wake = self.store.notices().of(&endpoint.id);
        let deadline = tokio::time::Instant::now() + req.wait.min(MAX_WAIT);
        loop {
            // Listening before looking: a commit between the look and the wait still wakes.
            let woken = wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let mut next_due = None;
            if !paused() {
                let (messages, expired, due) = self.take(endpoint, req).await?;
                if !messages.is_empty() {
                    return Ok(messages);
                }
                if expired {
                    // Those were counted, not given: there may be more behind them.
                    continue;
                }
                next_due = due;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline || *stop.borrow() {
                return Ok(Vec::new());
            }
            let mut until = deadline.min(now + LOOK_AGAIN);
            if let Some(due) = next_due {
                let wait_ms = due.saturating_sub(self.clock.now_ms());
                until = until.min(now + Duration::from_millis(wait_ms));
            }
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep_until(until) => {}
                _ = stop.changed() => return Ok(Vec::new()),
            }
        }
    }

    /// One claim: the fresh messages, whether any lease that ran out was counted, and when the
    /// next delivery falls due.
    async fn take(
        &self,
        endpoint: &Endpoint,
        req: Receive,
    ) -> Result<(Vec<Message>, bool, Option<u64>), StoreError> {
        let now = self.clock.now_ms();
        let until = lease_until(now, req.visibility);
        let limits = ClaimLimits {
            pull: true,
            ..ClaimLimits::default()
        };
        let max = req.max.clamp(1, MAX_MESSAGES);
        let batch = self
            .store
            .claim(&endpoint.id, now, max, Default::default(), until, limits)
            .await?;
        let (expired, fresh): (Vec<DueDelivery>, Vec<DueDelivery>) =
            batch.items.into_iter().partition(|d| d.lease_expired);
        // Counted together: one commit for all of them.
        let counting = expired.iter().map(|d| self.count_expired(endpoint, d, now));
        futures_util::future::try_join_all(counting).await?;
        let routes = self.routes.current();
        let messages = fresh
            .into_iter()
            .map(|item| {
                let scheme = routes.sources.get(&item.source).map(|s| s.scheme);
                message(endpoint, scheme, item, until, now)
            })
            .collect();
        Ok((messages, !expired.is_empty(), batch.next_due_ms))
    }

    /// Records a lease that ran out as a failed attempt, scheduled by the retry policy.
    async fn count_expired(
        &self,
        endpoint: &Endpoint,
        item: &DueDelivery,
        now: u64,
    ) -> Result<(), StoreError> {
        let next = after_nack(
            &endpoint.retry,
            item.cycle_attempts + 1,
            None,
            EXPIRED,
            (now, item.cycle_started_ms),
            &mut rand::rng(),
        );
        let done = self
            .store
            .complete(completion(
                item.delivery_id,
                item.lease_token,
                now,
                Some(EXPIRED),
                next.clone(),
            ))
            .await?;
        if !done.stale {
            self.metrics
                .attempt_finished(&endpoint.id, "expired", 0, settled(&next, 0));
        }
        Ok(())
    }

    /// Acks or nacks each receipt of `endpoint`: whether each was current (and so applied).
    /// A receipt of another endpoint's delivery is not current.
    pub async fn settle(
        &self,
        endpoint: &Endpoint,
        receipts: &[Receipt],
        how: &Settle,
    ) -> Result<Vec<bool>, StoreError> {
        // Every receipt at once: the store's writer commits what is queued together, so a
        // batch of acks costs one commit, not one each.
        let each = receipts.iter().map(|r| self.settle_one(endpoint, r, how));
        futures_util::future::try_join_all(each).await
    }

    async fn settle_one(
        &self,
        endpoint: &Endpoint,
        r: &Receipt,
        how: &Settle,
    ) -> Result<bool, StoreError> {
        let Some(d) = self.store.delivery(r.delivery_id).await? else {
            return Ok(false);
        };
        if d.endpoint_id != endpoint.id {
            return Ok(false);
        }
        let now = self.clock.now_ms();
        let (next, error, class) = match how {
            Settle::Ack => (Next::Delivered, None, "acked"),
            Settle::Nack { delay, reason } => {
                let error = match reason {
                    Some(reason) => format!("nacked by the consumer: {reason}"),
                    None => "nacked by the consumer".to_string(),
                };
                let next = after_nack(
                    &endpoint.retry,
                    d.cycle_attempts() + 1,
                    *delay,
                    &error,
                    (now, d.cycle_started_ms),
                    &mut rand::rng(),
                );
                (next, Some(error), "nacked")
            }
        };
        let done = self
            .store
            .complete(completion(
                r.delivery_id,
                Some(r.token),
                now,
                error.as_deref(),
                next.clone(),
            ))
            .await?;
        if !done.stale {
            let since = now.saturating_sub(d.cycle_started_ms);
            self.metrics
                .attempt_finished(&endpoint.id, class, 0, settled(&next, since));
        }
        Ok(!done.stale)
    }

    /// Prolongs each receipt's lease to `visibility` from now: whether each was current.
    pub async fn extend(
        &self,
        endpoint: &Endpoint,
        receipts: &[Receipt],
        visibility: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        let mut mine = Vec::with_capacity(receipts.len());
        for r in receipts {
            let owned = self
                .store
                .delivery(r.delivery_id)
                .await?
                .is_some_and(|d| d.endpoint_id == endpoint.id);
            mine.push(owned);
        }
        let until = lease_until(self.clock.now_ms(), visibility);
        let held: Vec<Held> = receipts
            .iter()
            .zip(&mine)
            .filter(|(_, owned)| **owned)
            .map(|(r, _)| r.held())
            .collect();
        let mut extended = self.store.extend(held, until).await?.into_iter();
        Ok(mine
            .into_iter()
            .map(|owned| owned && extended.next().unwrap_or(false))
            .collect())
    }
}

/// A leased delivery as a consumer gets it: as its POST would carry it, signed.
fn message(
    endpoint: &Endpoint,
    scheme: Option<crate::verify::SchemeKind>,
    item: DueDelivery,
    until: u64,
    now: u64,
) -> Message {
    let prepared = super::http::request::prepare(
        endpoint,
        scheme,
        &item.headers,
        &item.body,
        item.event_type.as_deref(),
    );
    let own = super::http::request::own_headers(
        endpoint,
        &item,
        &prepared.body,
        prepared.event_type.as_deref(),
        now,
    );
    let headers = prepared
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v))
        .chain(own.iter().map(|(n, v)| (*n, v)))
        .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    Message {
        receipt: Receipt {
            delivery_id: item.delivery_id,
            // A claim always leases under a token.
            token: item.lease_token.unwrap_or_default(),
        },
        event_id: item.event_id,
        event_type: item.event_type,
        source: item.source,
        attempt: item.attempts + 1,
        received_ms: item.received_ms,
        visible_at_ms: until,
        headers,
        body: prepared.body,
    }
}

fn completion(
    delivery_id: DeliveryId,
    lease_token: Option<u64>,
    now: u64,
    error: Option<&str>,
    next: Next,
) -> Completion {
    Completion {
        delivery_id,
        lease_token,
        attempt: Attempt {
            at_ms: now,
            status_code: None,
            latency_ms: 0,
            error: error.map(str::to_string),
            response_excerpt: Vec::new(),
        },
        next,
        health: None,
        strict: true,
        waited_on: false,
    }
}

fn settled(next: &Next, end_to_end_ms: u64) -> Settled {
    match next {
        Next::Delivered => Settled::Delivered { end_to_end_ms },
        Next::RetryAt(_) => Settled::Retried,
        Next::Dead(_) => Settled::Dead,
    }
}

#[cfg(test)]
mod tests;

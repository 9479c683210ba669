//! The outbox rules: what each store operation does to a delivery's state, as pure functions
//! of the delivery (and the time, and the operation's inputs). A backend reads the delivery,
//! asks the rule, and writes what it answers (or nothing, on a refusal), keeping its own
//! indexes in step; it never changes a delivery's state by itself. redb's writer calls these;
//! a PostgreSQL backend calls the same ones, so the two cannot disagree on the rules, only on
//! how they are stored.
//!
//! The life of a delivery, operation by operation:
//!
//! ```text
//! operation    from                                  to                                  refused
//! ingest       (new)                                 pending, due at arrival             -
//! lease        pending, retrying, delivering         delivering, due at lease expiry     final
//! complete     pending, retrying, delivering         delivered | retrying at t | dead    final
//! release      delivering                            pending (never tried) | retrying    final, not leased
//! requeue      pending, retrying, delivered, dead    pending, due now, new retry cycle   delivering
//! dead-letter  pending, retrying, delivering         dead, now, with a reason            final
//! ```
//!
//! - **A final delivery (delivered or dead) is never leased, released, completed or
//!   dead-lettered again**: only a requeue, which an operator asks for, reopens it.
//! - **A requeue leaves a delivery being sent alone** ([`Refusal::InFlight`]): its attempt's
//!   result is on its way.
//! - **A requeue starts a new retry cycle**, keeping the attempt count and the id (and so the
//!   `webhook-id` receivers dedup by).
//! - **A dead delivery's `updated_ms` is when it died**: the dead-letter index is keyed by it.
//! - **An event is pruned only when every delivery is final**, it arrived before the
//!   retention cutoff, and its last death (if any) is before the dead-letter cutoff.

use crate::ids::{DeliveryId, EventId};
use crate::model::event::{Attempt, Delivery, DeliveryStatus};
use crate::store::Next;

mod ordering;
pub use ordering::{needs_place, place, promote};

/// Why a rule leaves a delivery as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Delivered or dead: settled until an operator requeues it.
    #[error("the delivery is final")]
    Final,
    /// Being sent right now: a requeue would race the attempt's own result.
    #[error("the delivery is being sent")]
    InFlight,
    /// Not being sent: there is no lease to give back.
    #[error("the delivery is not leased")]
    NotLeased,
    /// Waiting behind an earlier delivery of its order key: only that key's head may go.
    #[error("the delivery waits behind an earlier one of its order key")]
    Blocked,
    /// Not waiting behind anything: there is nothing to promote it from.
    #[error("the delivery is not blocked")]
    NotBlocked,
}

/// Ingest: the delivery of a new event to one endpoint, pending and due at once (at the
/// event's arrival), in its first retry cycle.
pub fn ingest(id: DeliveryId, event_id: EventId, endpoint_id: &str, received_ms: u64) -> Delivery {
    Delivery {
        id,
        event_id,
        endpoint_id: endpoint_id.to_string(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        due_ms: received_ms,
        created_ms: received_ms,
        updated_ms: received_ms,
        last_status_code: None,
        last_error: None,
        cycle_base: 0,
        cycle_started_ms: received_ms,
        order: None,
        blocked: false,
        cycle_held_ms: 0,
    }
}

/// Ingest: whether a dedup entry that expires at `expires_ms` still holds at `at_ms` (an event
/// arriving then is a duplicate). At its expiry it no longer holds, and pruning may drop it.
pub fn dedup_holds(expires_ms: u64, at_ms: u64) -> bool {
    expires_ms > at_ms
}

/// Ingest: when the dedup entry of an event arriving at `received_ms` expires.
pub fn dedup_expires(received_ms: u64, window_ms: u64) -> u64 {
    received_ms.saturating_add(window_ms)
}

/// Ingest: whether `fanout` new deliveries fit beside `pending` ones under `limit`. An event
/// that does not fit is refused whole (the backlog error), never stored in part.
pub fn admits(pending: u64, fanout: u64, limit: u64) -> bool {
    pending.saturating_add(fanout) <= limit
}

/// Lease: the delivery is being sent until `until_ms`, its due time in the schedule then, so
/// an attempt that never reports back makes it due again. A delivery already being sent may
/// be leased again (its lease ran out and its lane took it back).
pub fn lease(d: &Delivery, until_ms: u64, now_ms: u64) -> Result<Delivery, Refusal> {
    if d.status.is_final() {
        return Err(Refusal::Final);
    }
    if d.blocked {
        return Err(Refusal::Blocked);
    }
    Ok(Delivery {
        status: DeliveryStatus::Delivering,
        due_ms: until_ms,
        updated_ms: now_ms,
        ..d.clone()
    })
}

/// Complete: an attempt is recorded (it is attempt number `attempts + 1`) and `next` decides
/// what follows: delivered, retrying at a time, or dead with a reason (which becomes its last
/// error).
///
/// Only a final delivery is refused (a second result, after its lease was taken back and it
/// was settled since: the first stands). A delivery that is not `delivering` is still
/// completed: a lease is queued, not awaited, so one lost to a failed commit leaves the
/// delivery pending while its attempt runs, and that attempt's result must not be lost.
pub fn complete(d: &Delivery, attempt: &Attempt, next: &Next) -> Result<Delivery, Refusal> {
    if d.status.is_final() {
        return Err(Refusal::Final);
    }
    let mut out = Delivery {
        attempts: d.attempts.saturating_add(1),
        updated_ms: attempt.at_ms,
        last_status_code: attempt.status_code,
        last_error: attempt.error.clone(),
        ..d.clone()
    };
    match next {
        Next::Delivered => {
            out.status = DeliveryStatus::Delivered;
            out.blocked = false;
        }
        Next::RetryAt(at) => {
            out.status = DeliveryStatus::Retrying;
            out.due_ms = *at;
        }
        Next::Dead(reason) => {
            out.status = DeliveryStatus::Dead;
            out.last_error = Some(reason.clone());
            out.blocked = false;
        }
    }
    Ok(out)
}

/// Requeue (a replay of dead letters, a retry of one delivery, a recover of an endpoint's):
/// pending and due now in a fresh retry cycle, whatever it was, unless it is being sent.
pub fn requeue(d: &Delivery, now_ms: u64) -> Result<Delivery, Refusal> {
    if d.status == DeliveryStatus::Delivering {
        return Err(Refusal::InFlight);
    }
    if d.blocked && !d.status.is_final() {
        return Err(Refusal::Blocked);
    }
    Ok(Delivery {
        status: DeliveryStatus::Pending,
        due_ms: now_ms,
        updated_ms: now_ms,
        cycle_base: d.attempts,
        cycle_started_ms: now_ms,
        ..d.clone()
    })
}

/// Release (a lane stopped before starting the attempt, or a restart took the lease back):
/// due again now, pending if it was never attempted, else retrying. Nothing else changes: no
/// attempt was made.
pub fn release(d: &Delivery, now_ms: u64) -> Result<Delivery, Refusal> {
    if d.status.is_final() {
        return Err(Refusal::Final);
    }
    if d.status != DeliveryStatus::Delivering {
        return Err(Refusal::NotLeased);
    }
    Ok(Delivery {
        status: if d.attempts == 0 {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::Retrying
        },
        due_ms: now_ms,
        ..d.clone()
    })
}

/// Dead-lettering without an attempt (its endpoint was deleted or removed, its event cannot be
/// read): dead now, with `reason` as its last error.
pub fn dead_letter(d: &Delivery, reason: &str, now_ms: u64) -> Result<Delivery, Refusal> {
    if d.status.is_final() {
        return Err(Refusal::Final);
    }
    // A final delivery waits behind nothing: blocked ones killed with their endpoint can be
    // replayed like any dead letter.
    Ok(Delivery {
        status: DeliveryStatus::Dead,
        last_error: Some(reason.to_string()),
        updated_ms: now_ms,
        blocked: false,
        ..d.clone()
    })
}

/// How many of an event's deliveries are not final yet.
pub fn unfinished<'a>(deliveries: impl IntoIterator<Item = &'a Delivery>) -> u64 {
    deliveries
        .into_iter()
        .filter(|d| !d.status.is_final())
        .count() as u64
}

/// The last death among an event's deliveries: a finished event with one is kept by the
/// dead-letter retention from then, one without by the event retention from its arrival.
pub fn last_death<'a>(deliveries: impl IntoIterator<Item = &'a Delivery>) -> Option<u64> {
    deliveries
        .into_iter()
        .filter_map(Delivery::dead_at_ms)
        .max()
}

/// The cutoffs of a pruning pass: what arrived, or died, before them is past keeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    pub events_before_ms: u64,
    pub dead_before_ms: u64,
}

/// Whether pruning may remove an event, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eligibility {
    /// Every delivery is final and past its retention: the event goes, with all it has.
    Prunable,
    /// This many deliveries are still waiting: the event stays, whatever its age.
    Unfinished(u64),
    /// Finished, but it arrived or its last delivery died too recently.
    Kept,
}

/// Prune: whether an event that arrived at `received_ms` may go, given its deliveries.
pub fn prunable(received_ms: u64, deliveries: &[Delivery], cutoffs: Cutoffs) -> Eligibility {
    let open = unfinished(deliveries);
    if open > 0 {
        return Eligibility::Unfinished(open);
    }
    let died_long_ago = last_death(deliveries).is_none_or(|at| at < cutoffs.dead_before_ms);
    if received_ms < cutoffs.events_before_ms && died_long_ago {
        Eligibility::Prunable
    } else {
        Eligibility::Kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 50_000;

    fn delivery(status: DeliveryStatus, attempts: u32) -> Delivery {
        Delivery {
            status,
            attempts,
            due_ms: 2_000,
            updated_ms: 1_500,
            last_status_code: (attempts > 0).then_some(503),
            last_error: (attempts > 0).then(|| "HTTP 503".to_string()),
            ..ingest(DeliveryId(2), EventId(1), "e", 1_000)
        }
    }

    fn attempt(status_code: Option<u16>, error: Option<&str>) -> Attempt {
        Attempt {
            at_ms: NOW,
            status_code,
            latency_ms: 12,
            error: error.map(str::to_string),
            response_excerpt: Vec::new(),
        }
    }

    const NOT_FINAL: [DeliveryStatus; 3] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivering,
        DeliveryStatus::Retrying,
    ];
    const FINAL: [DeliveryStatus; 2] = [DeliveryStatus::Delivered, DeliveryStatus::Dead];

    #[test]
    fn ingest_makes_a_pending_delivery_due_at_arrival_in_its_first_cycle() {
        let d = ingest(DeliveryId(9), EventId(8), "billing", 1_000);
        assert_eq!(
            (d.id, d.event_id, d.endpoint_id.as_str(), d.status),
            (
                DeliveryId(9),
                EventId(8),
                "billing",
                DeliveryStatus::Pending
            )
        );
        assert_eq!((d.attempts, d.cycle_attempts()), (0, 0));
        assert_eq!(
            (d.due_ms, d.created_ms, d.updated_ms, d.cycle_started_ms),
            (1_000, 1_000, 1_000, 1_000)
        );
        assert_eq!((d.last_status_code, d.last_error), (None, None));
    }

    #[test]
    fn a_dedup_entry_holds_until_its_expiry_and_not_at_it() {
        let expires = dedup_expires(1_000, 500);
        assert_eq!(expires, 1_500);
        assert!(dedup_holds(expires, 1_499));
        assert!(!dedup_holds(expires, 1_500));
        assert_eq!(dedup_expires(u64::MAX - 1, 10), u64::MAX);
    }

    #[test]
    fn the_backlog_admits_up_to_its_limit_and_not_beyond() {
        assert!(admits(8, 2, 10));
        assert!(!admits(9, 2, 10));
        assert!(admits(0, 0, 0));
        assert!(!admits(u64::MAX, 1, u64::MAX - 1));
    }

    #[test]
    fn lease_marks_it_delivering_until_the_lease_expires() {
        for status in NOT_FINAL {
            let d = delivery(status, 1);
            let leased = lease(&d, NOW + 30_000, NOW).expect("leased");
            assert_eq!(leased.status, DeliveryStatus::Delivering);
            assert_eq!((leased.due_ms, leased.updated_ms), (NOW + 30_000, NOW));
            // Nothing about its attempts or cycle changes.
            assert_eq!(
                (leased.attempts, leased.cycle_base, leased.last_error),
                (d.attempts, d.cycle_base, d.last_error)
            );
        }
    }

    #[test]
    fn a_final_delivery_is_never_leased() {
        for status in FINAL {
            assert_eq!(
                lease(&delivery(status, 1), NOW + 1, NOW),
                Err(Refusal::Final)
            );
        }
    }

    #[test]
    fn complete_records_the_attempt_and_what_follows() {
        let d = delivery(DeliveryStatus::Delivering, 1);
        let ok = complete(&d, &attempt(Some(200), None), &Next::Delivered).expect("done");
        assert_eq!(ok.status, DeliveryStatus::Delivered);
        assert_eq!((ok.attempts, ok.updated_ms), (2, NOW));
        assert_eq!((ok.last_status_code, ok.last_error), (Some(200), None));

        let again = complete(
            &d,
            &attempt(Some(503), Some("HTTP 503")),
            &Next::RetryAt(NOW + 4_000),
        )
        .expect("done");
        assert_eq!(again.status, DeliveryStatus::Retrying);
        assert_eq!(again.next_attempt_ms(), Some(NOW + 4_000));
        assert_eq!(again.last_error.as_deref(), Some("HTTP 503"));

        let dead = complete(
            &d,
            &attempt(Some(410), Some("HTTP 410")),
            &Next::Dead("gone".into()),
        )
        .expect("done");
        assert_eq!(dead.status, DeliveryStatus::Dead);
        // The reason replaces the attempt's error, and it died when the attempt was made.
        assert_eq!(dead.last_error.as_deref(), Some("gone"));
        assert_eq!(dead.last_status_code, Some(410));
        assert_eq!(dead.dead_at_ms(), Some(NOW));
    }

    #[test]
    fn complete_of_a_delivery_whose_lease_never_landed_is_still_recorded() {
        let d = delivery(DeliveryStatus::Pending, 0);
        let done = complete(&d, &attempt(Some(200), None), &Next::Delivered).expect("done");
        assert_eq!((done.status, done.attempts), (DeliveryStatus::Delivered, 1));
    }

    #[test]
    fn complete_of_a_delivery_no_longer_leased_and_settled_since_is_refused() {
        for status in FINAL {
            let d = delivery(status, 1);
            for next in [Next::Delivered, Next::RetryAt(NOW), Next::Dead("x".into())] {
                assert_eq!(
                    complete(&d, &attempt(Some(200), None), &next),
                    Err(Refusal::Final),
                    "{status:?} {next:?}"
                );
            }
        }
    }

    #[test]
    fn requeue_makes_it_pending_now_in_a_fresh_cycle() {
        for status in [
            DeliveryStatus::Pending,
            DeliveryStatus::Retrying,
            DeliveryStatus::Delivered,
            DeliveryStatus::Dead,
        ] {
            let d = delivery(status, 3);
            let r = requeue(&d, NOW).expect("requeued");
            assert_eq!(r.status, DeliveryStatus::Pending, "{status:?}");
            assert_eq!(r.next_attempt_ms(), Some(NOW));
            assert_eq!((r.updated_ms, r.cycle_started_ms), (NOW, NOW));
            // The history stays; the retry policy counts from the new cycle.
            assert_eq!((r.attempts, r.cycle_attempts()), (3, 0));
            assert_eq!((r.id, r.last_error), (d.id, d.last_error));
        }
    }

    #[test]
    fn requeue_of_a_delivery_being_sent_is_left_alone() {
        let d = delivery(DeliveryStatus::Delivering, 1);
        assert_eq!(requeue(&d, NOW), Err(Refusal::InFlight));
    }

    #[test]
    fn release_makes_it_due_now_by_whether_it_was_ever_attempted() {
        let fresh = release(&delivery(DeliveryStatus::Delivering, 0), NOW).expect("released");
        assert_eq!((fresh.status, fresh.due_ms), (DeliveryStatus::Pending, NOW));
        let tried = release(&delivery(DeliveryStatus::Delivering, 2), NOW).expect("released");
        assert_eq!(
            (tried.status, tried.due_ms),
            (DeliveryStatus::Retrying, NOW)
        );
        // No attempt was made: its record of attempts and its cycle stay.
        assert_eq!(
            (tried.attempts, tried.updated_ms, tried.cycle_base),
            (2, 1_500, 0)
        );
    }

    #[test]
    fn release_refuses_final_deliveries_and_ones_not_leased() {
        for status in FINAL {
            assert_eq!(release(&delivery(status, 1), NOW), Err(Refusal::Final));
        }
        for status in [DeliveryStatus::Pending, DeliveryStatus::Retrying] {
            assert_eq!(release(&delivery(status, 1), NOW), Err(Refusal::NotLeased));
        }
    }

    #[test]
    fn dead_lettering_kills_what_is_not_final_with_its_reason() {
        for status in NOT_FINAL {
            let dead = dead_letter(&delivery(status, 1), "endpoint deleted", NOW).expect("dead");
            assert_eq!(dead.status, DeliveryStatus::Dead);
            assert_eq!(dead.last_error.as_deref(), Some("endpoint deleted"));
            assert_eq!((dead.dead_at_ms(), dead.attempts), (Some(NOW), 1));
        }
        for status in FINAL {
            assert_eq!(
                dead_letter(&delivery(status, 1), "endpoint deleted", NOW),
                Err(Refusal::Final)
            );
        }
    }

    #[test]
    fn an_event_is_prunable_only_when_finished_and_past_both_retentions() {
        let cutoffs = Cutoffs {
            events_before_ms: 10_000,
            dead_before_ms: 5_000,
        };
        let delivered = delivery(DeliveryStatus::Delivered, 1);
        let dead_at = |at| Delivery {
            updated_ms: at,
            ..delivery(DeliveryStatus::Dead, 1)
        };
        let waiting = delivery(DeliveryStatus::Retrying, 1);

        assert_eq!(
            prunable(9_999, std::slice::from_ref(&delivered), cutoffs),
            Eligibility::Prunable
        );
        assert_eq!(
            prunable(10_000, std::slice::from_ref(&delivered), cutoffs),
            Eligibility::Kept
        );
        assert_eq!(
            prunable(1, &[delivered.clone(), dead_at(4_999)], cutoffs),
            Eligibility::Prunable
        );
        // The last death counts, not the first.
        assert_eq!(
            prunable(1, &[dead_at(1), dead_at(5_000)], cutoffs),
            Eligibility::Kept
        );
        assert_eq!(
            prunable(1, &[delivered.clone(), waiting.clone(), waiting], cutoffs),
            Eligibility::Unfinished(2)
        );
        // An event that reached no endpoint is finished at once.
        assert_eq!(prunable(1, &[], cutoffs), Eligibility::Prunable);
        assert_eq!(last_death(&[delivered, dead_at(7), dead_at(3)]), Some(7));
    }
}

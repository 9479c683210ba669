//! The ordering rules, for endpoints that deliver in order (`ordering = …`): each delivery has
//! an order key and a place in it (`Delivery::order`), and **only the head of a key (its
//! earliest delivery not yet final) is due**; the others are `blocked` behind it. When the head
//! becomes final (delivered, or dead by its retry policy), the next of its key is promoted.
//!
//! ```text
//! operation    from                                  to
//! place        a new delivery, or a final one        its key's last place; blocked if the key
//!              requeued (a replay)                   has a head already
//! promote      blocked (its key's head just ended)   due now, in a fresh retry cycle
//! ```
//!
//! - **A replayed delivery goes to the back of its key**: its old place is gone (the ones
//!   after it went out once it died), and refusing it would leave a dead letter of a busy key
//!   no way back.
//! - **A blocked delivery is never leased, and a retry or recover leaves it waiting**
//!   ([`Refusal::Blocked`]): only its key's head may go.
//! - **Promotion starts a fresh retry cycle**, so the time a delivery waited behind its key's
//!   head is not charged to its `max_age`.

use super::Refusal;
use crate::model::event::{Delivery, DeliveryStatus};

/// Place: `d` takes place `seq` (after every other of `key`); blocked when the key has a head
/// already (`head_exists`), else it is the head and due as it stands.
pub fn place(d: &Delivery, key: &str, seq: u64, head_exists: bool) -> Delivery {
    Delivery {
        order: Some((key.to_string(), seq)),
        blocked: head_exists,
        ..d.clone()
    }
}

/// Whether the change from `old` to `new` (a requeue's answer) needs a new place: an ordered
/// delivery that was final comes back, behind whatever its key holds now.
pub fn needs_place(old: &Delivery, new: &Delivery) -> bool {
    new.order.is_some() && old.status.is_final() && !new.status.is_final()
}

/// Promote: the head of `d`'s key has ended, so `d` is the head now: due at once, in a fresh
/// retry cycle. Refused for one that is not blocked (it is the head already, or final).
pub fn promote(d: &Delivery, now_ms: u64) -> Result<Delivery, Refusal> {
    if d.status.is_final() {
        return Err(Refusal::Final);
    }
    if !d.blocked {
        return Err(Refusal::NotBlocked);
    }
    Ok(Delivery {
        blocked: false,
        due_ms: now_ms,
        updated_ms: now_ms,
        cycle_base: d.attempts,
        cycle_started_ms: now_ms,
        status: if d.attempts == 0 {
            DeliveryStatus::Pending
        } else {
            d.status
        },
        ..d.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DeliveryId, EventId};
    use crate::store::outbox;

    fn new(id: u128) -> Delivery {
        outbox::ingest(DeliveryId(id), EventId(id), "e", 1_000)
    }

    #[test]
    fn the_first_of_a_key_is_its_head_and_the_rest_wait() {
        let head = place(&new(1), "cus_1", 7, false);
        assert_eq!(head.order, Some(("cus_1".into(), 7)));
        assert!(!head.blocked);
        let next = place(&new(2), "cus_1", 8, true);
        assert!(next.blocked);
        assert_eq!(
            next.due_ms, 1_000,
            "its due time is kept for when it is promoted"
        );
    }

    #[test]
    fn a_blocked_delivery_is_not_leased_retried_or_recovered() {
        let waiting = place(&new(2), "k", 8, true);
        assert_eq!(outbox::lease(&waiting, 9_000, 2_000), Err(Refusal::Blocked));
        assert_eq!(outbox::requeue(&waiting, 2_000), Err(Refusal::Blocked));
        let head = place(&new(1), "k", 7, false);
        assert!(outbox::lease(&head, 9_000, 2_000).is_ok());
        assert!(
            outbox::requeue(&head, 2_000).is_ok(),
            "a head keeps its place"
        );
    }

    #[test]
    fn promotion_makes_it_due_now_in_a_fresh_cycle() {
        let mut waiting = place(&new(2), "k", 8, true);
        waiting.attempts = 3;
        waiting.status = DeliveryStatus::Pending;
        let head = promote(&waiting, 50_000).expect("blocked");
        assert!(!head.blocked);
        assert_eq!(head.due_ms, 50_000);
        assert_eq!(head.cycle_base, 3);
        assert_eq!(
            head.cycle_started_ms, 50_000,
            "the wait is not charged to max_age"
        );
        assert_eq!(head.order, waiting.order, "it keeps its place");
        assert_eq!(promote(&head, 60_000), Err(Refusal::NotBlocked));
        let mut done = waiting.clone();
        done.status = DeliveryStatus::Delivered;
        assert_eq!(promote(&done, 60_000), Err(Refusal::Final));
    }

    #[test]
    fn a_blocked_delivery_that_dies_can_be_replayed_to_the_back() {
        let waiting = place(&new(2), "k", 8, true);
        let dead = outbox::dead_letter(&waiting, "endpoint deleted", 3_000).expect("killed");
        assert!(!dead.blocked, "a final delivery waits behind nothing");
        let back = outbox::requeue(&dead, 4_000).expect("replayed");
        assert!(needs_place(&dead, &back));
    }

    #[test]
    fn only_a_final_ordered_delivery_coming_back_needs_a_new_place() {
        let mut dead = place(&new(1), "k", 7, false);
        dead.status = DeliveryStatus::Dead;
        let back = outbox::requeue(&dead, 5_000).expect("requeued");
        assert!(needs_place(&dead, &back));
        let retrying = place(&new(1), "k", 7, false);
        let again = outbox::requeue(&retrying, 5_000).expect("requeued");
        assert!(!needs_place(&retrying, &again), "a head keeps its place");
        let plain = new(3);
        let mut plain_dead = plain.clone();
        plain_dead.status = DeliveryStatus::Dead;
        let back = outbox::requeue(&plain_dead, 5_000).expect("requeued");
        assert!(!needs_place(&plain_dead, &back), "unordered");
    }
}

//! What the writer tells others once a batch is on disk: the endpoints that got due work are
//! woken, and live views are told of each new event and each recorded result (see
//! `store::notices`). Called only after the commit returned, so nothing announced can still
//! be rolled back.

use std::collections::HashSet;

use super::{Command, Done};
use crate::store::notices::{Announcement, Notices};
use crate::store::{IngestOutcome, StoreError};

pub(super) fn after_commit(
    notices: &Notices,
    batch: &[Command],
    outcomes: &[Result<Done, StoreError>],
) {
    let mut due = HashSet::new();
    // An enable makes what was held due: its lane is woken like any other. It, a breaker's
    // transition and a death also wrote operational events: their publisher is woken too.
    let mut ops = false;
    for (command, outcome) in batch.iter().zip(outcomes) {
        match (command, outcome) {
            (Command::Enable(endpoint, _, _), Ok(Done::Enabled(_))) => {
                due.insert(endpoint.as_str());
                ops = true;
            }
            (_, Ok(Done::Settled(d, done))) => {
                ops |= done.transition.is_some()
                    || d.status == crate::model::event::DeliveryStatus::Dead;
            }
            _ => {}
        }
    }
    if ops {
        notices.ops.notify_one();
    }
    // Built only for an audience: most of the time nobody watches live.
    let live = notices.listened();
    for (command, outcome) in batch.iter().zip(outcomes) {
        match (command, outcome) {
            (
                Command::Ingest(ev, _),
                Ok(Done::Ingest(IngestOutcome::Accepted {
                    event_id,
                    deliveries,
                })),
            ) => {
                due.extend(deliveries.iter().map(|(_, e)| e.as_str()));
                if live {
                    notices.publish(Announcement::Event {
                        event_id: *event_id,
                        source: ev.source.clone(),
                        event_type: ev.event_type.clone(),
                        received_ms: ev.received_ms,
                        deliveries: deliveries.clone(),
                    });
                }
            }
            (_, Ok(Done::Requeued(r))) => {
                due.extend(r.deliveries.iter().map(|(_, e)| e.as_str()));
                if live && !r.deliveries.is_empty() {
                    notices.publish(Announcement::Requeued {
                        deliveries: r.deliveries.clone(),
                    });
                }
            }
            (_, Ok(Done::Settled(d, _))) => {
                // An ordered delivery that ended promoted the next of its key: due now.
                if d.order.is_some() && d.status.is_final() {
                    due.insert(d.endpoint_id.as_str());
                }
                if live {
                    notices.publish(Announcement::Result {
                        delivery_id: d.id,
                        event_id: d.event_id,
                        endpoint: d.endpoint_id.clone(),
                        status: d.status,
                        attempts: d.attempts,
                    });
                }
            }
            _ => {}
        }
    }
    for endpoint in due {
        notices.announce(endpoint);
    }
}

//! Ordered delivery on a database several nodes share: the SQL behind
//! [`outbox::place`] and [`outbox::promote`] (the rules themselves are `store::outbox`'s).
//!
//! A key's rows are its endpoint's deliveries with that `order_key`; its head is the one not
//! blocked, and **a key never has two heads**, whatever the interleaving of ingest, results
//! and requeues on any number of nodes. Three things hold that:
//!
//! - **Key locks.** Whatever may make or end a head takes the key's transaction-scoped
//!   advisory lock first: `hashtextextended(endpoint || ' ' || key, 1)` (seed 1, so a key's
//!   lock is never the claim's endpoint lock, which is seed 0). Several are taken in the
//!   order of their hashes, by one statement ([`lock_keys`]), so two transactions never wait
//!   on each other's key locks crosswise.
//! - **Places under the lock.** A place is `nextval('delivery_order_seq')` taken while the
//!   key's lock is held ([`places`]), so within a key places grow in commit order, which ULIDs
//!   (one generator per node) cannot promise; and whether the key has a head is read after
//!   the lock too, so it sees every commit of the key before.
//! - **Promotion in the ending transaction.** A head that becomes final ends under its key's
//!   lock, and the same transaction promotes the key's lowest place not final
//!   ([`next_heads`]). An ingest of the key either ran before (its row was blocked, and the
//!   promotion finds it) or runs after the commit (and finds the new head, or none).
//!
//! Callers keep the lock order of `rows.rs`: rows first, then key locks, then the promoted
//! rows, then event progress.

use std::collections::{BTreeMap, HashMap};

use super::error::Fail;
use super::rows::{COLUMNS, delivery};
use super::time::unms;
use crate::model::event::Delivery;
use crate::store::{StoreError, outbox};

/// An order key of an endpoint: (endpoint id, order key).
pub(super) type Key = (String, String);

/// The key an ordered delivery belongs to.
pub(super) fn key_of(d: &Delivery) -> Option<Key> {
    d.order
        .as_ref()
        .map(|(k, _)| (d.endpoint_id.clone(), k.clone()))
}

/// Takes the advisory locks of `keys` (repeats are fine) until the transaction ends, in the
/// order of their hashes.
pub(super) async fn lock_keys(
    tx: &deadpool_postgres::Transaction<'_>,
    keys: &[Key],
) -> Result<(), Fail> {
    if keys.is_empty() {
        return Ok(());
    }
    let (endpoints, names) = columns(keys);
    // The sorted subquery cannot be flattened (OFFSET 0), so the locks are taken one row
    // after the other, in its order.
    let stmt = tx
        .prepare_cached(
            "SELECT pg_advisory_xact_lock(h) FROM ( \
               SELECT DISTINCT hashtextextended(e || ' ' || k, 1) AS h \
               FROM unnest($1::text[], $2::text[]) AS u(e, k) ORDER BY h OFFSET 0) s",
        )
        .await?;
    tx.execute(&stmt, &[&endpoints, &names]).await?;
    Ok(())
}

/// The places of deliveries going to the back of `wanted` (one entry per delivery, in the
/// order they are placed; a key may repeat): for each, its place and whether its key has a
/// head already ([`outbox::place`]'s `seq` and `head_exists`). The first of a key with no
/// delivery waiting is its head; every later one of the same call waits behind it.
///
/// The caller holds the locks of these keys ([`lock_keys`]).
pub(super) async fn places(
    tx: &deadpool_postgres::Transaction<'_>,
    wanted: &[Key],
) -> Result<Vec<(u64, bool)>, Fail> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let (endpoints, names) = columns(wanted);
    // The hot table holds exactly the deliveries not final: any row of the key is a head or
    // waits behind one.
    let exists = tx
        .prepare_cached(
            "SELECT u.e, u.k, EXISTS (SELECT 1 FROM deliveries d \
               WHERE d.endpoint_id = u.e AND d.order_key = u.k) \
             FROM unnest($1::text[], $2::text[]) AS u(e, k)",
        )
        .await?;
    let mut has_head: HashMap<Key, bool> = HashMap::new();
    for row in tx.query(&exists, &[&endpoints, &names]).await? {
        has_head.insert((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?);
    }
    let next = tx
        .prepare_cached("SELECT nextval('delivery_order_seq') FROM generate_series(1, $1::int8)")
        .await?;
    let n = i64::try_from(wanted.len()).unwrap_or(i64::MAX);
    let seqs: Vec<u64> = tx
        .query(&next, &[&n])
        .await?
        .iter()
        .map(|r| r.try_get::<_, i64>(0).map(unms))
        .collect::<Result<_, _>>()?;
    if seqs.len() != wanted.len() {
        return Err(Fail::Store(StoreError::Storage(format!(
            "asked the order sequence for {} places, got {}",
            wanted.len(),
            seqs.len()
        ))));
    }
    Ok(assign(wanted, has_head, seqs))
}

/// Gives `wanted` (in the order they are placed) the places `seqs` in increasing order, and
/// says which wait behind a head: those whose key had one (`has_head`), and every one after
/// the first of its key here.
fn assign(
    wanted: &[Key],
    mut has_head: HashMap<Key, bool>,
    mut seqs: Vec<u64>,
) -> Vec<(u64, bool)> {
    // In the order taken, whatever order the rows came back in.
    seqs.sort_unstable();
    wanted
        .iter()
        .zip(seqs)
        .map(|(key, seq)| {
            let head = has_head.entry(key.clone()).or_default();
            let out = (seq, *head);
            // Whatever it is, the next one of this key waits behind it.
            *head = true;
            out
        })
        .collect()
}

/// After the heads of `ended` became final in this transaction (each with the time it ended):
/// each key's next delivery (its lowest place not final), locked, and promoted
/// ([`outbox::promote`]) to be due from that time. A key with none waiting, or whose next is
/// not blocked, gives nothing. The caller holds the keys' locks, and writes what this answers.
pub(super) async fn next_heads(
    tx: &deadpool_postgres::Transaction<'_>,
    ended: &BTreeMap<Key, u64>,
) -> Result<Vec<Delivery>, Fail> {
    if ended.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<Key> = ended.keys().cloned().collect();
    let (endpoints, names) = columns(&keys);
    // One row locked per key, in key order (the map's), so two promoters never wait on each
    // other's rows crosswise. A row that a concurrent transaction moved away while this one
    // waited for it is skipped, and the next one taken.
    let sql = format!(
        "SELECT n.* FROM unnest($1::text[], $2::text[]) AS u(e, k) \
         CROSS JOIN LATERAL (SELECT {COLUMNS} FROM deliveries d \
           WHERE d.endpoint_id = u.e AND d.order_key = u.k \
           ORDER BY d.order_seq LIMIT 1 FOR UPDATE) n"
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let mut out = Vec::new();
    for row in tx.query(&stmt, &[&endpoints, &names]).await? {
        let d = delivery(&row, 0)?;
        let Some(at) = key_of(&d).and_then(|k| ended.get(&k)) else {
            continue;
        };
        if let Ok(head) = outbox::promote(&d, *at) {
            out.push(head);
        }
    }
    Ok(out)
}

/// Keys as two column arrays, for `unnest`.
fn columns(keys: &[Key]) -> (Vec<&str>, Vec<&str>) {
    keys.iter().map(|(e, k)| (e.as_str(), k.as_str())).unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(e: &str, k: &str) -> Key {
        (e.to_string(), k.to_string())
    }

    #[test]
    fn the_first_of_a_key_without_a_head_is_its_head_and_the_rest_wait_in_order() {
        let wanted = [
            key("o", "a"),
            key("o", "b"),
            key("o", "a"),
            key("p", "a"),
            key("o", "a"),
        ];
        // `b` has a head already; the places came back out of order.
        let has_head = HashMap::from([(key("o", "a"), false), (key("o", "b"), true)]);
        let got = assign(&wanted, has_head, vec![14, 10, 12, 11, 13]);
        assert_eq!(
            got,
            [(10, false), (11, true), (12, true), (13, false), (14, true)]
        );
    }

    #[test]
    fn a_key_found_with_a_head_gets_none_here() {
        let wanted = [key("o", ""), key("o", "")];
        let has_head = HashMap::from([(key("o", ""), true)]);
        assert_eq!(
            assign(&wanted, has_head, vec![7, 8]),
            [(7, true), (8, true)]
        );
    }
}

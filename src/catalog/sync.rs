//! Keeping a node's catalog in step with the store, where other nodes change it too.
//!
//! Several nodes share one PostgreSQL store; a source or endpoint made, changed or deleted
//! through any node's admin API, and a pause or resume, is stored first. Every node polls the
//! store's catalog version ([`crate::store::Store::catalog_version`], bumped in the very
//! transactions that change entries or pauses) and, when it moved, reloads the entries and
//! pauses and applies the difference: routes swapped, lanes started, replaced or stopped,
//! pauses applied locally. **A change through any node takes effect on every node within
//! [`POLL`]**, without a restart. The embedded store's version never moves (one node holds the
//! file), so there this loop only ever reads a number.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::Catalog;
use crate::config::Validated;
use crate::delivery::Dispatcher;
use crate::filter::Routes;
use crate::model::{Endpoint, Source};
use crate::store::{EntryKind, StoreError};

/// How often the version is read.
pub const POLL: Duration = Duration::from_millis(500);

/// Polls the catalog version until `stop`, refreshing when it moves.
pub async fn run(
    catalog: Arc<Catalog>,
    dispatcher: Arc<Dispatcher>,
    mut stop: watch::Receiver<bool>,
) {
    // Unknown at first: the first poll refreshes once, so a change stored between loading the
    // catalog and this loop's start is not missed.
    let mut seen: Option<u64> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let version = match catalog.store.catalog_version().await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the catalog version");
                continue;
            }
        };
        if seen == Some(version) {
            continue;
        }
        match catalog.refresh(&dispatcher).await {
            Ok(()) => seen = Some(version),
            Err(e) => tracing::warn!(error = %e, "cannot refresh the catalog; trying again"),
        }
    }
}

impl Catalog {
    /// Brings this node's API-made entries and pauses in line with the store's.
    pub async fn refresh(&self, dispatcher: &Dispatcher) -> Result<(), StoreError> {
        let _one_at_a_time = self.change.lock().await;
        let mut stored: HashMap<(EntryKind, String), Value> = HashMap::new();
        for kind in [EntryKind::Source, EntryKind::Endpoint] {
            for (id, json) in self.store.entries(kind).await? {
                if self.file.contains(&(kind, id.clone())) {
                    continue;
                }
                match serde_json::from_slice(&json) {
                    Ok(v) => {
                        stored.insert((kind, id), v);
                    }
                    Err(e) => {
                        tracing::error!(id, kind = kind.as_str(), error = %e, "stored entry is not JSON; skipped");
                    }
                }
            }
        }
        let known = self.api_json().clone();
        if known != stored {
            // First let the store make work for every endpoint that may come into force, so
            // an event routed to a new one while the routes change keeps its delivery; once
            // the routes are swapped, narrow it to what is in force.
            let mut widened: std::collections::HashSet<String> =
                self.routes.current().endpoint_ids();
            widened.extend(
                stored
                    .keys()
                    .filter(|(kind, _)| *kind == EntryKind::Endpoint)
                    .map(|(_, id)| id.clone()),
            );
            self.store.follow_endpoints(widened).await?;
            self.apply_stored(&known, &stored, dispatcher);
        }
        // Narrowed on every refresh, not only one that changed the routes: a narrowing that
        // failed is made by the next (which comes, as the version was not marked seen).
        let in_force = self.routes.current().endpoint_ids();
        self.store.follow_endpoints(in_force).await?;
        let paused = self.store.paused_endpoints().await?;
        for e in &self.routes.current().endpoints {
            let want = paused.contains(&e.id);
            if dispatcher.is_paused(&e.id) != Some(want) {
                dispatcher.apply_paused(&e.id, want);
            }
        }
        Ok(())
    }

    /// Puts `stored` in force where it differs from `known` (both: the API-made entries).
    fn apply_stored(
        &self,
        known: &HashMap<(EntryKind, String), Value>,
        stored: &HashMap<(EntryKind, String), Value>,
        dispatcher: &Dispatcher,
    ) {
        let routes = self.routes.current();
        let mut sources: BTreeMap<String, Source> = routes.sources.clone();
        let mut endpoints: Vec<Endpoint> = routes.endpoints.clone();
        let mut api_json = known.clone();
        let mut removed = Vec::new();
        let mut upserted = Vec::new();
        for key in known.keys().filter(|k| !stored.contains_key(*k)) {
            api_json.remove(key);
            match key.0 {
                EntryKind::Source => {
                    sources.remove(&key.1);
                }
                EntryKind::Endpoint => {
                    endpoints.retain(|e| e.id != key.1);
                    removed.push(key.1.clone());
                }
            }
        }
        // Sources first: endpoints are validated against them.
        for kind in [EntryKind::Source, EntryKind::Endpoint] {
            for ((k, id), value) in stored.iter().filter(|((k, _), _)| *k == kind) {
                if known.get(&(*k, id.clone())) == Some(value) {
                    continue;
                }
                let applied = match kind {
                    EntryKind::Source => Validated::source_from_json(value).map(|s| {
                        sources.insert(s.id.clone(), s);
                    }),
                    EntryKind::Endpoint => {
                        self.defaults.endpoint_from_json(value, &sources).map(|e| {
                            match endpoints.iter_mut().find(|x| x.id == e.id) {
                                Some(slot) => *slot = e.clone(),
                                None => endpoints.push(e.clone()),
                            }
                            upserted.push(e);
                        })
                    }
                };
                match applied {
                    Ok(()) => {
                        api_json.insert((*k, id.clone()), value.clone());
                    }
                    Err(e) => {
                        tracing::error!(id, kind = kind.as_str(), error = %e, "a stored entry does not validate on this node; skipped");
                    }
                }
            }
        }
        *self.api_json() = api_json;
        self.routes.replace(Routes::new(sources, endpoints));
        for id in removed {
            dispatcher.remove(&id);
        }
        for e in upserted {
            dispatcher.upsert(e);
        }
    }
}

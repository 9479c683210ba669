//! The sources and endpoints in force: those declared in the config file, and those made
//! through the admin API, which are kept in the store and loaded again at start.
//!
//! **Entries declared in the file are read-only through the API** (409): the file is the
//! operator's source of truth for them. API-made entries are validated exactly as the file's
//! are (same keys, as JSON), stored before they take effect, and applied without a restart:
//! the route table is swapped and the endpoint's lane started, replaced or stopped. Changes are
//! serialized, so a read-modify-write (PATCH) never loses a concurrent one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use serde_json::Value;

use crate::config::{ConfigError, EndpointDefaults, Validated};
use crate::delivery::Dispatcher;
use crate::filter::{RouteTable, Routes};
use crate::model::{Endpoint, Source};
use crate::store::{EntryKind, Store, StoreError};

/// Where an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    File,
    Api,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::File => "file",
            Origin::Api => "api",
        }
    }
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("no {0} {1:?}")]
    NotFound(&'static str, String),
    #[error("{0} {1:?} is declared in the config file; change it there")]
    FileDeclared(&'static str, String),
    #[error("{0} {1:?} already exists")]
    Exists(&'static str, String),
    #[error("source {0:?} is used by endpoint {1:?}")]
    InUse(String, String),
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

pub mod expire;
pub mod sync;

pub struct Catalog {
    /// What API-made endpoints take from `[delivery]`.
    defaults: EndpointDefaults,
    file: HashSet<(EntryKind, String)>,
    /// The JSON of every API-made entry, for PATCH.
    api_json: Mutex<HashMap<(EntryKind, String), Value>>,
    /// Stored API-made entries that no longer validate: not in force, but still deletable.
    broken: Mutex<HashSet<(EntryKind, String)>>,
    routes: std::sync::Arc<RouteTable>,
    store: Store,
    change: tokio::sync::Mutex<()>,
}

impl Catalog {
    /// The file's entries plus the stored API-made ones. A stored entry that no longer
    /// validates, or whose id the file now declares, is skipped with an error in the log.
    pub async fn load(
        config: &Validated,
        store: &Store,
    ) -> Result<(Catalog, std::sync::Arc<RouteTable>), StoreError> {
        let mut sources = config.sources.clone();
        let mut endpoints = config.endpoints.clone();
        let mut file = HashSet::new();
        file.extend(sources.keys().map(|id| (EntryKind::Source, id.clone())));
        file.extend(
            endpoints
                .iter()
                .map(|e| (EntryKind::Endpoint, e.id.clone())),
        );
        let mut api_json = HashMap::new();
        let mut broken = HashSet::new();
        for (kind, entries) in [
            (EntryKind::Source, store.entries(EntryKind::Source).await?),
            (
                EntryKind::Endpoint,
                store.entries(EntryKind::Endpoint).await?,
            ),
        ] {
            for (id, json) in entries {
                if file.contains(&(kind, id.clone())) {
                    tracing::error!(
                        id,
                        kind = kind.as_str(),
                        "an API-made entry has the id of one in the config file; the file's wins"
                    );
                    continue;
                }
                let value: Value = match serde_json::from_slice(&json) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!(id, kind = kind.as_str(), error = %e, "stored entry is not JSON; skipped (DELETE it through the API)");
                        broken.insert((kind, id));
                        continue;
                    }
                };
                let applied = match kind {
                    EntryKind::Source => Validated::source_from_json(&value).map(|s| {
                        sources.insert(s.id.clone(), s);
                    }),
                    EntryKind::Endpoint => config
                        .endpoint_from_json(&value, &sources)
                        .map(|e| endpoints.push(e)),
                };
                match applied {
                    Ok(()) => {
                        api_json.insert((kind, id), value);
                    }
                    Err(e) => {
                        tracing::error!(id, kind = kind.as_str(), error = %e, "stored entry no longer validates; skipped (DELETE it through the API)");
                        broken.insert((kind, id));
                    }
                }
            }
        }
        let routes = std::sync::Arc::new(RouteTable::new(Routes::new(sources, endpoints)));
        let catalog = Catalog {
            defaults: config.endpoint_defaults.clone(),
            file,
            api_json: Mutex::new(api_json),
            broken: Mutex::new(broken),
            routes: std::sync::Arc::clone(&routes),
            store: store.clone(),
            change: tokio::sync::Mutex::new(()),
        };
        Ok((catalog, routes))
    }

    fn api_json(&self) -> std::sync::MutexGuard<'_, HashMap<(EntryKind, String), Value>> {
        self.api_json.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where an entry in force comes from (`None`: no such entry).
    pub fn origin(&self, kind: EntryKind, id: &str) -> Option<Origin> {
        if self.file.contains(&(kind, id.to_string())) {
            Some(Origin::File)
        } else if self.api_json().contains_key(&(kind, id.to_string())) {
            Some(Origin::Api)
        } else {
            None
        }
    }

    /// Creates an entry from its JSON (which carries its `id`).
    pub async fn create(
        &self,
        kind: EntryKind,
        value: Value,
        dispatcher: &Dispatcher,
    ) -> Result<String, CatalogError> {
        let _one_at_a_time = self.change.lock().await;
        let id = value
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if self.origin(kind, &id).is_some() {
            return Err(CatalogError::Exists(kind.as_str(), id));
        }
        self.apply(kind, &id, value, dispatcher).await?;
        Ok(id)
    }

    /// Changes an API-made entry: the fields of `patch` replace the stored ones (`null` removes
    /// one); the result is validated as a whole.
    pub async fn update(
        &self,
        kind: EntryKind,
        id: &str,
        patch: Value,
        dispatcher: &Dispatcher,
    ) -> Result<(), CatalogError> {
        let _one_at_a_time = self.change.lock().await;
        let value = merge_patch(self.editable(kind, id)?, id, patch)?;
        self.apply(kind, id, value, dispatcher).await
    }

    /// Rotates an API-made endpoint's signing secret: `new` (or a fresh random one) becomes
    /// the secret, and the old one keeps signing beside it until `until_ms`. Rotated-out
    /// secrets whose time has passed are dropped. Returns the new secret.
    pub async fn rotate_secret(
        &self,
        id: &str,
        new: Option<String>,
        now_ms: u64,
        until_ms: u64,
        dispatcher: &Dispatcher,
    ) -> Result<String, CatalogError> {
        let _one_at_a_time = self.change.lock().await;
        let mut value = self.editable(EntryKind::Endpoint, id)?;
        let Value::Object(fields) = &mut value else {
            return Err(ConfigError {
                key: "body".into(),
                problem: "stored entry is not an object".into(),
            }
            .into());
        };
        let new = new.unwrap_or_else(crate::verify::standard_webhooks::generate_secret);
        let rfc3339 = |ms: u64| {
            humantime::format_rfc3339_millis(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
            )
            .to_string()
        };
        let mut previous: Vec<Value> = fields
            .get("previous_secrets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| {
                p.get("until")
                    .and_then(Value::as_str)
                    .and_then(|u| humantime::parse_rfc3339_weak(u).ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .is_some_and(|d| d.as_millis() > u128::from(now_ms))
            })
            .collect();
        if let Some(old) = fields.get("secret").and_then(Value::as_str) {
            previous.push(serde_json::json!({ "secret": old, "until": rfc3339(until_ms) }));
        }
        fields.insert("secret".into(), Value::String(new.clone()));
        fields.insert("previous_secrets".into(), Value::Array(previous));
        self.apply(EntryKind::Endpoint, id, value, dispatcher)
            .await?;
        Ok(new)
    }

    /// Deletes an API-made entry. An endpoint's undelivered deliveries are dead-lettered;
    /// returns how many.
    pub async fn delete(
        &self,
        kind: EntryKind,
        id: &str,
        dispatcher: &Dispatcher,
    ) -> Result<u64, CatalogError> {
        let _one_at_a_time = self.change.lock().await;
        let key = (kind, id.to_string());
        if self.origin(kind, id).is_none()
            && self
                .broken
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&key)
        {
            // Not in force, so nothing routes to it; what it had left was dead-lettered at
            // start. Only the stored entry is left to remove.
            let dead = self.store.delete_entry(kind, id).await?;
            self.broken
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            return Ok(dead);
        }
        self.editable(kind, id)?;
        let routes = self.routes.current();
        if kind == EntryKind::Source
            && let Some(e) = routes
                .endpoints
                .iter()
                .find(|e| e.sources.iter().any(|s| s == id))
        {
            return Err(CatalogError::InUse(id.to_string(), e.id.clone()));
        }
        let dead = self.store.delete_entry(kind, id).await?;
        self.api_json().remove(&(kind, id.to_string()));
        let mut sources = routes.sources.clone();
        let mut endpoints = routes.endpoints.clone();
        match kind {
            EntryKind::Source => {
                sources.remove(id);
            }
            EntryKind::Endpoint => endpoints.retain(|e| e.id != id),
        }
        self.routes.replace(Routes::new(sources, endpoints));
        if kind == EntryKind::Endpoint {
            dispatcher.remove(id);
        }
        Ok(dead)
    }

    /// The stored JSON of an API-made entry, as PATCH would change it (the console's edit
    /// form starts from it); a file's entry is `FileDeclared`.
    pub fn api_entry(&self, kind: EntryKind, id: &str) -> Result<Value, CatalogError> {
        self.editable(kind, id)
    }

    fn editable(&self, kind: EntryKind, id: &str) -> Result<Value, CatalogError> {
        match self.origin(kind, id) {
            None => Err(CatalogError::NotFound(kind.as_str(), id.to_string())),
            Some(Origin::File) => Err(CatalogError::FileDeclared(kind.as_str(), id.to_string())),
            Some(Origin::Api) => Ok(self
                .api_json()
                .get(&(kind, id.to_string()))
                .cloned()
                .unwrap_or(Value::Null)),
        }
    }

    /// Validates, stores, then puts in force.
    async fn apply(
        &self,
        kind: EntryKind,
        id: &str,
        value: Value,
        dispatcher: &Dispatcher,
    ) -> Result<(), CatalogError> {
        let routes = self.routes.current();
        let mut sources: BTreeMap<String, Source> = routes.sources.clone();
        let mut endpoints: Vec<Endpoint> = routes.endpoints.clone();
        let mut new_endpoint = None;
        match kind {
            EntryKind::Source => {
                let s = Validated::source_from_json(&value)?;
                sources.insert(s.id.clone(), s);
            }
            EntryKind::Endpoint => {
                let e = self.defaults.endpoint_from_json(&value, &sources)?;
                match endpoints.iter_mut().find(|x| x.id == e.id) {
                    Some(slot) => *slot = e.clone(),
                    None => endpoints.push(e.clone()),
                }
                new_endpoint = Some(e);
            }
        }
        self.store
            .put_entry(kind, id, value.to_string().into_bytes())
            .await?;
        self.api_json().insert((kind, id.to_string()), value);
        self.routes.replace(Routes::new(sources, endpoints));
        if let Some(e) = new_endpoint {
            dispatcher.upsert(e);
        }
        Ok(())
    }
}

/// Applies a PATCH body to a stored entry: each field of `patch` replaces the stored one, and
/// `null` removes it. The id cannot change. The result is validated by the caller as a whole.
pub fn merge_patch(mut stored: Value, id: &str, patch: Value) -> Result<Value, ConfigError> {
    let (Value::Object(fields), Value::Object(changes)) = (&mut stored, patch) else {
        return Err(ConfigError {
            key: "body".into(),
            problem: "must be a JSON object".into(),
        });
    };
    for (k, v) in changes {
        if k == "id" && v.as_str() != Some(id) {
            return Err(ConfigError {
                key: "id".into(),
                problem: "cannot be changed; create a new entry".into(),
            });
        }
        if v.is_null() {
            fields.remove(&k);
        } else {
            fields.insert(k, v);
        }
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_patch_replaces_fields_removes_nulls_and_keeps_the_id() {
        let stored = json!({"id": "a", "url": "https://x/", "max_in_flight": 4});
        let merged = merge_patch(
            stored.clone(),
            "a",
            json!({"url": "https://y/", "max_in_flight": null, "id": "a"}),
        )
        .expect("valid patch");
        assert_eq!(merged, json!({"id": "a", "url": "https://y/"}));
        let err = merge_patch(stored.clone(), "a", json!({"id": "b"})).expect_err("id change");
        assert_eq!(err.key, "id");
        let err = merge_patch(stored, "a", json!([1])).expect_err("not an object");
        assert_eq!(err.key, "body");
    }
}

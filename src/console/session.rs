//! Console sessions: the admin token is presented once, at sign-in, and exchanged for a random
//! session id carried in an `HttpOnly; SameSite=Strict` cookie. The token never reaches the
//! browser's storage.
//!
//! Sessions live in memory (a restart signs everyone out, which is the safe direction) and
//! expire [`SESSION_TTL_MS`] after sign-in. Each holds the role its token granted and its own
//! CSRF token, which every console POST must echo (**every console POST checks `Origin` and
//! the session's CSRF token**). The table is bounded: at [`MAX_SESSIONS`] the oldest goes.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::RngCore;

use crate::api::access::Role;
use crate::verify::constant_time_eq;

/// The cookie's name.
pub const COOKIE: &str = "hookgate_session";

/// How long a session lasts after sign-in.
pub const SESSION_TTL_MS: u64 = 12 * 60 * 60 * 1000;

/// The most sessions kept at once: signing in more often than this cannot grow memory.
pub const MAX_SESSIONS: usize = 4096;

/// What a signed-in browser may do, and the token its forms must send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub role: Role,
    pub csrf: String,
    pub expires_ms: u64,
}

/// Every live session, by id.
#[derive(Default)]
pub struct Sessions {
    // A std mutex: it is never held across an await, only for a lookup or an insert.
    map: Mutex<HashMap<String, Session>>,
}

/// 256 random bits, hex.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    /// Starts a session for `role`; returns its id.
    pub fn start(&self, role: Role, now_ms: u64) -> String {
        let id = random_token();
        let session = Session {
            role,
            csrf: random_token(),
            expires_ms: now_ms.saturating_add(SESSION_TTL_MS),
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.expires_ms > now_ms);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires_ms)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), session);
        id
    }

    /// The live session `id` names; an expired one is forgotten.
    pub fn get(&self, id: &str, now_ms: u64) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(id) {
            Some(s) if s.expires_ms > now_ms => Some(s.clone()),
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends session `id` (sign-out).
    pub fn end(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

impl Session {
    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        constant_time_eq(presented.as_bytes(), self.csrf.as_bytes())
    }

    /// Seconds left, for the cookie's `Max-Age`.
    pub fn max_age_secs(&self, now_ms: u64) -> u64 {
        self.expires_ms.saturating_sub(now_ms) / 1000
    }
}

/// The `Set-Cookie` value for session `id`: `Secure` when the console is served over https.
pub fn cookie(id: &str, max_age_secs: u64, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/console; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the cookie.
pub fn cleared_cookie(secure: bool) -> String {
    cookie("", 0, secure)
}

/// The session id in a `Cookie` header, if any.
pub fn id_in(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lasts_its_time_and_no_longer() {
        let sessions = Sessions::default();
        let id = sessions.start(Role::Operator, 1_000);
        assert_eq!(id.len(), 64);
        let s = sessions.get(&id, 1_000).expect("live");
        assert_eq!(s.role, Role::Operator);
        assert_eq!(s.max_age_secs(1_000), SESSION_TTL_MS / 1000);
        assert!(sessions.get(&id, 1_000 + SESSION_TTL_MS - 1).is_some());
        assert!(sessions.get(&id, 1_000 + SESSION_TTL_MS).is_none());
        // Forgotten once expired, even if the clock were to go back.
        assert!(sessions.get(&id, 1_000).is_none());
        let other = sessions.start(Role::Admin, 0);
        sessions.end(&other);
        assert!(sessions.get(&other, 0).is_none());
        assert!(sessions.get("", 0).is_none());
    }

    #[test]
    fn each_session_has_its_own_csrf_token() {
        let sessions = Sessions::default();
        let a = sessions.get(&sessions.start(Role::Admin, 0), 0).expect("a");
        let b = sessions.get(&sessions.start(Role::Admin, 0), 0).expect("b");
        assert_ne!(a.csrf, b.csrf);
        assert!(a.csrf_matches(&a.csrf));
        assert!(!a.csrf_matches(&b.csrf));
        assert!(!a.csrf_matches(""));
    }

    #[test]
    fn the_table_is_bounded() {
        let sessions = Sessions::default();
        let first = sessions.start(Role::Viewer, 0);
        for i in 0..MAX_SESSIONS {
            sessions.start(Role::Viewer, i as u64 + 1);
        }
        assert!(sessions.get(&first, 2).is_none());
        assert!(sessions.map.lock().expect("lock").len() <= MAX_SESSIONS);
    }

    #[test]
    fn cookies_are_http_only_strict_and_scoped() {
        assert_eq!(
            cookie("abc", 60, false),
            "hookgate_session=abc; Path=/console; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        assert!(cookie("abc", 60, true).ends_with("; Secure"));
        assert!(cleared_cookie(false).contains("Max-Age=0"));
        assert_eq!(id_in("a=b; hookgate_session=xyz; c=d"), Some("xyz"));
        assert_eq!(id_in("hookgate_session="), None);
        assert_eq!(id_in("other=1"), None);
    }
}

//! Who may use the admin listener: the role a presented token grants.
//!
//! A minimal version: the single configured `admin.token` is the one token, and it grants
//! [`Role::Admin`]. **Tokens are compared in constant time.** Named roles per token
//! (`admin.tokens`) replace this file; callers ask only [`Access::role_of`] and
//! [`Access::is_open`], so they need no change then.

use crate::model::Secret;
use crate::verify::constant_time_eq;

/// What a token may do, lowest first: a viewer reads, an operator also retries, replays,
/// pauses and resumes, an admin may do everything.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

/// The tokens in force and their roles.
pub struct Access {
    admin: Option<Secret>,
}

impl Access {
    /// Access with `admin` (the configured `admin.token`, if any) as the one admin token.
    pub fn new(admin: Option<Secret>) -> Access {
        Access { admin }
    }

    /// The role `token` grants, if any.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        let admin = self.admin.as_ref()?;
        constant_time_eq(token.as_bytes(), admin.expose().as_bytes()).then_some(Role::Admin)
    }

    /// Whether no token is configured: then no one is let in.
    pub fn is_open(&self) -> bool {
        self.admin.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_configured_token_is_an_admin() {
        let access = Access::new(Some(Secret::new("s3cret")));
        assert_eq!(access.role_of("s3cret"), Some(Role::Admin));
        assert_eq!(access.role_of("s3cre"), None);
        assert_eq!(access.role_of(""), None);
        assert!(!access.is_open());
        let none = Access::new(None);
        assert_eq!(none.role_of(""), None);
        assert!(none.is_open());
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }
}

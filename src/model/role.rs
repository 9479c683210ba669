//! Who may do what through the admin API: a bearer token grants one [`Role`]. The roles are
//! ordered, each allowing what the one below it does and more, so a route states the least
//! role it needs and a check is one comparison.

use std::fmt;

use super::Secret;

/// What a token may do. Ordered: `Viewer < Operator < Admin`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything but secrets; changes nothing.
    Viewer,
    /// A viewer who can also act on deliveries: retry, replay, recover, pause, resume, publish.
    Operator,
    /// Everything: sources and endpoints, and their secrets.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    /// The name in config and messages: `viewer`, `operator`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token and the role it grants. Its `Debug` shows the role only (the token is a [`Secret`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub token: Secret,
    pub role: Role,
    /// A consumer's scope: only routes of these endpoints (`/endpoints/{id}/…`). `None`:
    /// every route the role allows.
    pub endpoints: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_named_as_in_config() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for role in Role::ALL {
            let json = serde_json::to_string(&role).expect("serializes");
            assert_eq!(json, format!("\"{role}\""));
            assert_eq!(serde_json::from_str::<Role>(&json).expect("reads"), role);
        }
        let grant = Grant {
            token: Secret::new("hg_very-secret"),
            role: Role::Operator,
            endpoints: None,
        };
        assert!(!format!("{grant:?}").contains("very-secret"));
    }
}

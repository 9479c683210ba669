//! The registry's machinery: the `schemes!` macro that `verify.rs` lists every scheme in, and
//! what [`SchemeKind`] answers from it (names, the config's `verify = "..."` parser). The list
//! itself is in `verify.rs`, beside the scheme modules, so that adding a scheme is a file and a
//! line there.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::LazyLock;

use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::{SchemeDefaults, SchemeKind, SourceOption};

/// Makes [`SchemeKind`] from the list: one variant per scheme (so code can name a scheme,
/// `SchemeKind::Github`, and a source holds a `Copy` value), [`SchemeKind::ALL`] in list order,
/// and [`SchemeKind::scheme`], the registration behind each.
macro_rules! schemes {
    ($($kind:ident => $scheme:path,)+) => {
        /// A signature scheme, as `verify = "..."` names it: one per registered scheme.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum SchemeKind {
            $($kind,)+
        }

        impl SchemeKind {
            /// Every scheme, in registration order.
            pub const ALL: &'static [SchemeKind] = &[$(SchemeKind::$kind,)+];

            /// The scheme's registration: its names, builder, defaults, signer.
            pub fn scheme(self) -> &'static dyn Scheme {
                match self {
                    $(SchemeKind::$kind => &$scheme,)+
                }
            }
        }
    };
}
pub(super) use schemes;

/// Every name `verify = "..."` accepts: each scheme's name and aliases, sorted within the
/// scheme (as serde lists an enum's aliases), schemes in registration order.
static NAMES: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    SchemeKind::ALL
        .iter()
        .flat_map(|k| {
            let s = k.scheme();
            std::iter::once(s.name())
                .chain(s.aliases().iter().copied())
                .collect::<BTreeSet<_>>()
        })
        .collect()
});

impl SchemeKind {
    /// The name config and the CLI use for it.
    pub fn name(self) -> &'static str {
        self.scheme().name()
    }

    /// The scheme a name or alias stands for.
    pub fn from_name(name: &str) -> Option<SchemeKind> {
        Self::ALL.iter().copied().find(|k| {
            let s = k.scheme();
            s.name() == name || s.aliases().contains(&name)
        })
    }

    /// Every accepted name and alias (what an unknown name's error lists).
    pub fn names() -> &'static [&'static str] {
        &NAMES
    }

    /// Whether the scheme reads an optional source key.
    pub fn uses(self, option: SourceOption) -> bool {
        self.scheme().options().contains(&option)
    }

    /// Where its provider puts the delivery id and event type.
    pub fn defaults(self) -> SchemeDefaults {
        self.scheme().defaults()
    }
}

/// `verify = "<name or alias>"`, read as a derived unit-only enum is (so a wrong type is refused
/// in the same words); an unknown name is refused with every accepted one listed (`unknown
/// variant ..., expected one of ...`).
impl<'de> Deserialize<'de> for SchemeKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The variant's name, looked up in the registry.
        struct Name(SchemeKind);
        impl<'de> Deserialize<'de> for Name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = Name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("variant identifier")
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Name, E> {
                        SchemeKind::from_name(v)
                            .map(Name)
                            .ok_or_else(|| E::unknown_variant(v, SchemeKind::names()))
                    }
                }
                d.deserialize_identifier(V)
            }
        }
        struct Kind;
        impl<'de> Visitor<'de> for Kind {
            type Value = SchemeKind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("enum SchemeKind")
            }
            fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<SchemeKind, A::Error> {
                let (Name(kind), variant) = data.variant()?;
                de::VariantAccess::unit_variant(variant)?;
                Ok(kind)
            }
        }
        d.deserialize_enum("SchemeKind", SchemeKind::names(), Kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_unique() {
        let mut seen = BTreeSet::new();
        for name in SchemeKind::names() {
            assert!(seen.insert(*name), "{name} is registered twice");
        }
        for k in SchemeKind::ALL {
            assert_eq!(SchemeKind::from_name(k.name()), Some(*k));
        }
        assert_eq!(SchemeKind::from_name("twitter"), Some(SchemeKind::X));
        assert_eq!(
            SchemeKind::from_name("msgraph"),
            Some(SchemeKind::MicrosoftGraph)
        );
        assert_eq!(SchemeKind::from_name("carrier-pigeon"), None);
    }

    #[test]
    fn unknown_names_list_every_accepted_one() {
        #[derive(Debug, serde::Deserialize)]
        struct S {
            #[allow(dead_code)]
            verify: SchemeKind,
        }
        let e = serde_json::from_str::<S>(r#"{"verify": "zzz"}"#)
            .expect_err("unknown")
            .to_string();
        assert!(
            e.starts_with("unknown variant `zzz`, expected one of `standard-webhooks`, `stripe`"),
            "{e}"
        );
        assert!(
            e.contains("`twitter`, `x`") && e.contains("`msgraph`"),
            "{e}"
        );
        let ok: S = serde_json::from_str(r#"{"verify": "twitter"}"#).expect("alias");
        assert_eq!(ok.verify, SchemeKind::X);
    }
}

//! Enums with names: one list of `Variant = "name"` gives the enum, its names in files,
//! commands and storage, `Display`, `FromStr` (any case), and serde, so the name a value is
//! written with can never drift from the name it is read with.

use std::fmt;

/// A name that is none of an enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}`: expected {}", one_of(expected))]
pub struct UnknownName {
    /// What was expected (`platform`, `message kind`).
    pub what: &'static str,
    /// What was given.
    pub given: String,
    /// The names there are.
    pub expected: &'static [&'static str],
}

/// `a, b or c`.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

impl UnknownName {
    /// For a serde error.
    pub fn to_serde<E: serde::de::Error>(&self) -> E {
        E::custom(self)
    }
}

/// Writes `name` for serde's `expecting`.
pub fn expecting(f: &mut fmt::Formatter<'_>, what: &str, names: &[&str]) -> fmt::Result {
    write!(f, "a {what}: {}", one_of(names))
}

/// Defines an enum whose every variant has a name; see the module documentation.
macro_rules! named {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every variant, in order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// Every name, in order.
            pub const NAMES: [&'static str; [$($text),+].len()] = [$($text),+];

            /// The name used in files, commands and storage.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::names::UnknownName;

            fn from_str(s: &str) -> Result<$name, $crate::names::UnknownName> {
                $name::ALL
                    .into_iter()
                    .find(|v| v.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| $crate::names::UnknownName {
                        what: $what,
                        given: s.to_owned(),
                        expected: &$name::NAMES,
                    })
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                struct Visitor;
                impl ::serde::de::Visitor<'_> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                        $crate::names::expecting(f, $what, &$name::NAMES)
                    }
                    fn visit_str<E: ::serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(|e: $crate::names::UnknownName| e.to_serde())
                    }
                }
                d.deserialize_str(Visitor)
            }
        }
    };
}

pub(crate) use named;

#[cfg(test)]
mod tests {
    named! {
        /// A test enum.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Fruit as "fruit" {
            /// An apple.
            Apple = "apple",
            /// A blood orange.
            BloodOrange = "blood_orange",
        }
    }

    #[test]
    fn names_read_and_write_alike_everywhere() {
        assert_eq!(Fruit::ALL, [Fruit::Apple, Fruit::BloodOrange]);
        assert_eq!(Fruit::BloodOrange.to_string(), "blood_orange");
        assert_eq!("Blood_Orange".parse::<Fruit>(), Ok(Fruit::BloodOrange));
        assert_eq!(
            serde_json::to_string(&Fruit::BloodOrange).unwrap(),
            "\"blood_orange\""
        );
        assert_eq!(
            serde_json::from_str::<Fruit>("\"apple\"").unwrap(),
            Fruit::Apple
        );
        let err = "pear".parse::<Fruit>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown fruit `pear`: expected apple or blood_orange"
        );
        let err = serde_json::from_str::<Fruit>("\"pear\"").unwrap_err();
        assert!(err.to_string().contains("unknown fruit `pear`"), "{err}");
    }
}

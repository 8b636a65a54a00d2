//! Time: instants as milliseconds since the Unix epoch, durations in the humane form rule
//! files and commands use. The engine never reads a clock: callers pass the time in.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch. The engine never reads a clock: callers pass one in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn millis(self) -> i64 {
        self.0
    }

    /// This instant moved forward by `d` (saturating).
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_millis(d)))
    }

    /// This instant moved back by `d` (saturating).
    pub fn minus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_millis(d)))
    }

    /// RFC 3339 with millisecond precision, in UTC.
    pub fn to_rfc3339(self) -> String {
        let time = if self.0 >= 0 {
            std::time::UNIX_EPOCH + Duration::from_millis(self.0.unsigned_abs())
        } else {
            std::time::UNIX_EPOCH - Duration::from_millis(self.0.unsigned_abs())
        };
        humantime::format_rfc3339_millis(time).to_string()
    }

    /// Parses RFC 3339 (`2026-11-21T09:30:00Z`, fractional seconds allowed).
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, humantime::TimestampError> {
        let time = humantime::parse_rfc3339_weak(s)?;
        let millis = match time.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => duration_millis(after),
            Err(before) => -duration_millis(before.duration()),
        };
        Ok(Timestamp(millis))
    }
}

/// A duration in whole milliseconds, saturating at `i64::MAX`.
pub fn duration_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an RFC 3339 time such as \"2026-11-21T09:30:00Z\" or epoch milliseconds",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v)
                    .map_err(|e| E::custom(format_args!("invalid time `{v}`: {e}")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v)
                    .map(Timestamp)
                    .map_err(|_| E::custom("epoch milliseconds out of range"))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Serde helper for durations written as `30s`, `10m`, `24h`, `7d`.
pub mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `d` in the shortest humane form (`1h 30m`).
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(*d))
    }

    /// Reads `30s`, `10m`, `24h`, `7d`, `1h 30m`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    /// Parses a humane duration, refusing zero.
    pub fn parse(text: &str) -> Result<Duration, String> {
        match humantime::parse_duration(text) {
            Ok(d) if d.is_zero() => Err(format!("duration `{text}` must be longer than zero")),
            Ok(d) => Ok(d),
            Err(e) => Err(format!(
                "invalid duration `{text}` ({e}): write it like 30s, 10m, 24h or 7d"
            )),
        }
    }

    /// The same for optional fields.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes `Some(d)` like [`super::serialize`].
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        /// Reads an optional humane duration.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|t| super::parse(&t).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_rfc3339_and_epoch_millis() {
        let t = Timestamp::parse_rfc3339("2026-11-21T09:30:00Z").unwrap();
        assert_eq!(t.millis(), 1_795_253_400_000);
        assert_eq!(t.to_rfc3339(), "2026-11-21T09:30:00.000Z");
        let from_json: Timestamp = serde_json::from_str("1795253400000").unwrap();
        assert_eq!(from_json, t);
    }
}

//! Where in a rule set a problem is: `rules[2].regex.patterns[1]`.

use std::fmt;

/// One step in a path into a rule set: a field or an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// A field.
    Key(String),
    /// An array element.
    Index(usize),
}

/// Where in a rule set something is: `rules[2].regex.patterns[1]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigPath(pub Vec<PathSeg>);

impl ConfigPath {
    /// The whole rule set.
    pub fn root() -> ConfigPath {
        ConfigPath(Vec::new())
    }

    /// This path one step further: a field (`"rules"`) or an element (`2`).
    pub fn join(&self, step: impl Into<PathSeg>) -> ConfigPath {
        let mut path = self.clone();
        path.0.push(step.into());
        path
    }
}

impl From<&str> for PathSeg {
    fn from(field: &str) -> PathSeg {
        PathSeg::Key(field.to_owned())
    }
}

impl From<usize> for PathSeg {
    fn from(index: usize) -> PathSeg {
        PathSeg::Index(index)
    }
}

impl fmt::Display for ConfigPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if i == 0 => f.write_str(k)?,
                PathSeg::Key(k) => write!(f, ".{k}")?,
                PathSeg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A problem in a rule set, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Where.
    pub path: ConfigPath,
    /// What is wrong, and what to write instead.
    pub message: String,
}

pub(super) struct Errors {
    pub(super) list: Vec<ConfigError>,
}

impl Errors {
    pub(super) fn push(&mut self, path: &ConfigPath, message: impl Into<String>) {
        self.list.push(ConfigError {
            path: path.clone(),
            message: message.into(),
        });
    }
}

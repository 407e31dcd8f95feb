//! Configuration errors: each names `file:line:col`, the key's path and what is wrong. They are
//! collected, never thrown one at a time, so an operator fixes a file in one pass. Request-time
//! errors live in `crate::error`, not here.

use super::yaml::Pos;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    /// Dotted key path such as `signature.max_age_seconds` or `routes[1].methods[0]`; `(root)`
    /// for the document itself.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(root)"
        } else {
            &self.path
        };
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.col, path, self.message
        )
    }
}

/// Every error found in a policy (and the key files it names), in file then position order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    /// One line per error: `FILE:LINE:COL: PATH: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The error sink one file's parse writes into.
#[derive(Debug)]
pub(crate) struct Diag {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl Diag {
    pub fn new(file: &str) -> Self {
        Diag {
            file: file.to_string(),
            errors: Vec::new(),
        }
    }

    pub fn err(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line: pos.line,
            col: pos.col,
            path: path.to_string(),
            message: message.into(),
        });
    }
}

//! Typed reads out of the positioned YAML tree. Every read that fails records an error at the
//! value's position and returns `None`, so parsing carries on and all errors come out together.
//! Knows nothing about which keys the policy has; the section parsers pass their key lists in.

use super::error::Diag;
use super::yaml::{Node, Pos, Value};

/// `parent.key`, or `key` at the root.
pub(crate) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A mapping whose keys have been checked against the section's known keys.
pub(crate) struct MapReader<'a> {
    pub pos: Pos,
    pub path: String,
    entries: Vec<(&'a str, &'a Node)>,
}

impl<'a> MapReader<'a> {
    /// Reports a non-mapping node, non-string keys, duplicate keys and unknown keys (with the
    /// closest known key as a hint). A null node reads as an empty mapping (`signature:` alone).
    pub fn new(d: &mut Diag, node: &'a Node, path: &str, known: &[&str]) -> Option<Self> {
        let mut entries: Vec<(&'a str, &'a Node)> = Vec::new();
        match &node.value {
            Value::Null => {}
            Value::Map(map) => {
                for (k, v) in map {
                    let Value::Str(key) = &k.value else {
                        d.err(
                            k.pos,
                            path,
                            format!("keys must be strings, got {}", k.kind()),
                        );
                        continue;
                    };
                    let key_path = child(path, key);
                    if !known.contains(&key.as_str()) {
                        let msg = match suggest(key, known) {
                            Some(s) => format!("unknown key `{key}`; did you mean `{s}`?"),
                            None => format!(
                                "unknown key `{key}`; known keys here: {}",
                                known.join(", ")
                            ),
                        };
                        d.err(k.pos, &key_path, msg);
                    } else if entries.iter().any(|(e, _)| e == key) {
                        d.err(k.pos, &key_path, format!("duplicate key `{key}`"));
                    } else {
                        entries.push((key.as_str(), v));
                    }
                }
            }
            _ => {
                d.err(
                    node.pos,
                    path,
                    format!("expected a mapping, got {}", node.kind()),
                );
                return None;
            }
        }
        Some(MapReader {
            pos: node.pos,
            path: path.to_string(),
            entries,
        })
    }

    pub fn get(&self, key: &str) -> Option<(&'a Node, String)> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| (*v, child(&self.path, key)))
    }

    /// Like `get`, but an explicit `null` counts as absent.
    pub fn get_some(&self, key: &str) -> Option<(&'a Node, String)> {
        self.get(key).filter(|(n, _)| n.value != Value::Null)
    }
}

/// The known word closest to `word`, when it is close enough to be a plausible typo.
pub(crate) fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    let lower = word.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (levenshtein(&lower, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

pub(crate) fn string<'a>(d: &mut Diag, n: &'a Node, path: &str) -> Option<&'a str> {
    match &n.value {
        Value::Str(s) => Some(s),
        _ => {
            let hint = match n.value {
                Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
                    " (quote it to make it a string)"
                }
                _ => "",
            };
            d.err(
                n.pos,
                path,
                format!("expected a string, got {}{hint}", n.kind()),
            );
            None
        }
    }
}

/// A string, or `None` without error for `null`.
pub(crate) fn opt_string(d: &mut Diag, n: &Node, path: &str) -> Option<String> {
    match n.value {
        Value::Null => None,
        _ => string(d, n, path).map(str::to_string),
    }
}

pub(crate) fn boolean(d: &mut Diag, n: &Node, path: &str) -> Option<bool> {
    match &n.value {
        Value::Bool(b) => Some(*b),
        Value::Str(s) if matches!(s.as_str(), "yes" | "no" | "on" | "off" | "y" | "n") => {
            d.err(
                n.pos,
                path,
                format!(
                    "expected true or false, got {:?} (YAML 1.2 has only true and false)",
                    s
                ),
            );
            None
        }
        _ => {
            d.err(
                n.pos,
                path,
                format!("expected true or false, got {}", n.kind()),
            );
            None
        }
    }
}

/// An integer within `min..=max`.
pub(crate) fn integer(d: &mut Diag, n: &Node, path: &str, min: u64, max: u64) -> Option<u64> {
    let v = match &n.value {
        Value::Int(i) => *i,
        // Quoted digits, or digits the YAML layer could not fit in an i64.
        Value::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            let msg =
                format!("{s:?} is not an integer in {min}..={max} (write it unquoted, in range)");
            d.err(n.pos, path, msg);
            return None;
        }
        _ => {
            d.err(
                n.pos,
                path,
                format!("expected an integer in {min}..={max}, got {}", n.kind()),
            );
            return None;
        }
    };
    match u64::try_from(v) {
        Ok(u) if (min..=max).contains(&u) => Some(u),
        _ => {
            d.err(n.pos, path, format!("{v} is out of range {min}..={max}"));
            None
        }
    }
}

pub(crate) fn list<'a>(d: &mut Diag, n: &'a Node, path: &str) -> Option<&'a [Node]> {
    match &n.value {
        Value::Seq(items) => Some(items),
        Value::Null => Some(&[]),
        _ => {
            d.err(n.pos, path, format!("expected a list, got {}", n.kind()));
            None
        }
    }
}

/// A string that must be one of `choices` (exact, lowercase).
pub(crate) fn choice<T: Copy>(
    d: &mut Diag,
    n: &Node,
    path: &str,
    choices: &[(&str, T)],
) -> Option<T> {
    let names: Vec<&str> = choices.iter().map(|(s, _)| *s).collect();
    let one_of = names.join(" | ");
    let Value::Str(s) = &n.value else {
        d.err(
            n.pos,
            path,
            format!("expected one of {one_of}, got {}", n.kind()),
        );
        return None;
    };
    if let Some((_, v)) = choices.iter().find(|(c, _)| c == s) {
        return Some(*v);
    }
    let hint = match suggest(s, &names) {
        Some(k) => format!("; did you mean `{k}`?"),
        None => String::new(),
    };
    d.err(
        n.pos,
        path,
        format!("unknown value {s:?}: expected one of {one_of}{hint}"),
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_typos_and_ignore_strangers() {
        let known = ["methods", "mode", "path_prefix", "dry_run"];
        assert_eq!(suggest("mehtods", &known), Some("methods"));
        assert_eq!(suggest("path-prefix", &known), Some("path_prefix"));
        assert_eq!(suggest("Mode", &known), Some("mode"));
        assert_eq!(suggest("completely_else", &known), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }
}

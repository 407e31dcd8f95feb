//! A small positioned YAML 1.2 tree built from `saphyr-parser` events: every node knows its
//! line:col, mappings keep their order and duplicates (the caller reports them), scalars are
//! resolved with the YAML 1.2 core schema (so `off`, `yes`, `no` stay strings). It does not
//! interpret policy keys; that is `reader` and the section parsers.

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::HashMap;

/// 1-based line and column, as editors and compilers show them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn of(span: &Span) -> Self {
        // saphyr lines are 1-based, columns 0-based.
        Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

impl Node {
    /// A short human name of the node's type, for "expected X, got Y" messages.
    pub fn kind(&self) -> String {
        match &self.value {
            Value::Null => "null".into(),
            Value::Bool(b) => format!("boolean {b}"),
            Value::Int(i) => format!("integer {i}"),
            Value::Float(f) => format!("number {f}"),
            Value::Str(s) => format!("string {s:?}"),
            Value::Seq(_) => "a list".into(),
            Value::Map(_) => "a mapping".into(),
        }
    }
}

/// Nesting deeper than this is refused: no policy needs it, and a deep tree would otherwise cost
/// stack when it is dropped.
const MAX_DEPTH: usize = 64;
/// Upper bound on nodes produced by alias expansion (the "billion laughs" defence).
const ALIAS_BUDGET: usize = 10_000;

/// Parse one YAML document. `Ok(None)` for an empty file. A syntax error is returned with its
/// position; YAML cannot be parsed past one, so there is only ever one.
pub fn parse_document(text: &str) -> Result<Option<Node>, (Pos, String)> {
    let mut stack: Vec<(Node, Option<Node>, usize)> = Vec::new(); // (collection, pending key, anchor)
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut budget = ALIAS_BUDGET;
    let mut doc: Option<Node> = None;
    let mut docs = 0usize;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| {
            let m = e.marker();
            (
                Pos {
                    line: m.line(),
                    col: m.col() + 1,
                },
                e.info().to_string(),
            )
        })?;
        let pos = Pos::of(&span);
        let finished: Option<(Node, usize)> = match ev {
            Event::DocumentStart(_) => {
                docs += 1;
                if docs > 1 {
                    return Err((pos, "a policy file holds exactly one YAML document".into()));
                }
                None
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err((pos, format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                let value = if matches!(ev, Event::MappingStart(..)) {
                    Value::Map(Vec::new())
                } else {
                    Value::Seq(Vec::new())
                };
                stack.push((Node { pos, value }, None, anchor));
                None
            }
            Event::MappingEnd | Event::SequenceEnd => stack.pop().map(|(n, _, a)| (n, a)),
            Event::Scalar(text, style, anchor, tag) => {
                let verbatim = tag.as_ref().is_some_and(|t| {
                    (t.is_yaml_core_schema() && t.suffix == "str")
                        || (t.handle == "!" && t.suffix.is_empty())
                });
                let value = if style == ScalarStyle::Plain && !verbatim {
                    resolve_plain(&text)
                } else {
                    Value::Str(text.into_owned())
                };
                Some((Node { pos, value }, anchor))
            }
            Event::Alias(id) => {
                let Some(target) = anchors.get(&id) else {
                    return Err((pos, "alias to an unknown anchor".into()));
                };
                let cost = count(target);
                if cost > budget {
                    return Err((pos, "alias expansion too large".into()));
                }
                budget -= cost;
                let mut node = target.clone();
                node.pos = pos;
                Some((node, 0))
            }
            _ => None,
        };
        let Some((node, anchor)) = finished else {
            continue;
        };
        if anchor > 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => doc = Some(node),
            Some((parent, key, _)) => match &mut parent.value {
                Value::Seq(items) => items.push(node),
                Value::Map(entries) => match key.take() {
                    None => *key = Some(node),
                    Some(k) => entries.push((k, node)),
                },
                _ => {}
            },
        }
    }
    Ok(doc)
}

fn count(n: &Node) -> usize {
    1 + match &n.value {
        Value::Seq(items) => items.iter().map(count).sum(),
        Value::Map(entries) => entries.iter().map(|(k, v)| count(k) + count(v)).sum(),
        _ => 0,
    }
}

/// YAML 1.2 core schema (§10.3.2) resolution of a plain scalar.
pub(crate) fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // Out of i64 range: keep it as a string; the reader reports it as out of range.
        return s
            .parse()
            .map(Value::Int)
            .unwrap_or_else(|_| Value::Str(s.into()));
    }
    if let Some(oct) = s.strip_prefix("0o")
        && let Ok(v) = i64::from_str_radix(oct, 8)
    {
        return Value::Int(v);
    }
    if let Some(hex) = s.strip_prefix("0x")
        && let Ok(v) = i64::from_str_radix(hex, 16)
    {
        return Value::Int(v);
    }
    if is_core_float(s)
        && let Ok(f) = s.parse()
    {
        return Value::Float(f);
    }
    Value::Str(s.into())
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_core_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(int)
        && frac.is_none_or(all_digits)
        && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()));
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exp_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(t: &str) -> Node {
        parse_document(t).unwrap().unwrap()
    }

    #[test]
    fn yaml_1_2_keeps_off_yes_no_as_strings() {
        let n =
            doc("a: off\nb: yes\nc: no\nd: false\ne: 'true'\nf: 0o17\ng: 1.5\nh: ~\ni: !!str 12\n");
        let Value::Map(m) = n.value else { panic!() };
        let vals: Vec<_> = m.into_iter().map(|(_, v)| v.value).collect();
        assert_eq!(
            vals,
            vec![
                Value::Str("off".into()),
                Value::Str("yes".into()),
                Value::Str("no".into()),
                Value::Bool(false),
                Value::Str("true".into()),
                Value::Int(15),
                Value::Float(1.5),
                Value::Null,
                Value::Str("12".into()),
            ]
        );
    }

    #[test]
    fn positions_are_one_based() {
        let n = doc("top:\n  key: \"v\"\n");
        let Value::Map(m) = n.value else { panic!() };
        let Value::Map(inner) = &m[0].1.value else {
            panic!()
        };
        assert_eq!(inner[0].0.pos, Pos { line: 2, col: 3 });
        assert_eq!(inner[0].1.pos, Pos { line: 2, col: 8 });
    }

    #[test]
    fn syntax_errors_deep_nesting_and_alias_bombs_are_errors() {
        assert!(parse_document("a: [1, 2\n").is_err());
        assert!(parse_document(&"[".repeat(200)).is_err());
        assert!(parse_document("---\na: 1\n---\nb: 2\n").is_err());
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..6 {
            let prev = if i == 0 {
                "a".to_string()
            } else {
                format!("l{}", i - 1)
            };
            bomb.push_str(&format!("l{i}: &l{i} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
        }
        assert!(parse_document(&bomb).is_err());
        assert_eq!(parse_document("").unwrap(), None);
        assert_eq!(parse_document("# only a comment\n").unwrap(), None);
    }
}

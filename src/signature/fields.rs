//! Access to a request's header fields by lowercase name, in received order, whatever stores
//! them (Pingora's `http::HeaderMap`, or a raw field list that may still contain obs-fold).

/// Header fields of a message. Implementations must return every field line whose name matches
/// `name` case-insensitively, in the order received.
pub trait FieldSource {
    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&[u8]));

    fn has_field(&self, name: &str) -> bool {
        let mut found = false;
        self.for_each_value(name, &mut |_| found = true);
        found
    }
}

impl FieldSource for http::HeaderMap {
    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        for v in self.get_all(name) {
            f(v.as_bytes());
        }
    }
}

/// Field lines as parsed from a raw message: `(name, value)` in received order.
impl FieldSource for [(String, Vec<u8>)] {
    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        for (n, v) in self {
            if n.eq_ignore_ascii_case(name) {
                f(v);
            }
        }
    }
}

impl FieldSource for Vec<(String, Vec<u8>)> {
    fn for_each_value(&self, name: &str, f: &mut dyn FnMut(&[u8])) {
        self.as_slice().for_each_value(name, f)
    }
}

/// Appends a field line's value as RFC 9421 §2.1 wants it: leading and trailing whitespace
/// stripped, every obs-fold (CRLF or LF plus whitespace) replaced by one space.
/// Returns false when the value holds bytes that cannot appear in a signature base (non-ASCII,
/// controls): such a field must be signed with `;bs`.
pub fn push_canonical_value(out: &mut String, value: &[u8]) -> bool {
    let v = trim_ows(value);
    let mut i = 0;
    while i < v.len() {
        let b = v[i];
        if b == b'\r' || b == b'\n' {
            while out.ends_with([' ', '\t']) {
                out.pop();
            }
            while i < v.len() && matches!(v[i], b'\r' | b'\n' | b' ' | b'\t') {
                i += 1;
            }
            out.push(' ');
            continue;
        }
        if !(b == b'\t' || (0x20..0x7f).contains(&b)) {
            return false;
        }
        out.push(b as char);
        i += 1;
    }
    true
}

pub fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !is_ws(*b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !is_ws(*b)).map_or(start, |e| e + 1);
    &v[start..end]
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(v: &str) -> String {
        let mut s = String::new();
        assert!(push_canonical_value(&mut s, v.as_bytes()));
        s
    }

    #[test]
    fn trims_and_unfolds() {
        assert_eq!(
            canon("   Leading and trailing whitespace.   "),
            "Leading and trailing whitespace."
        );
        assert_eq!(
            canon("Obsolete\n    line folding."),
            "Obsolete line folding."
        );
        assert_eq!(
            canon("Obsolete  \r\n \t line folding."),
            "Obsolete line folding."
        );
        assert_eq!(canon(""), "");
        assert_eq!(canon("   "), "");
    }

    #[test]
    fn rejects_non_ascii() {
        let mut s = String::new();
        assert!(!push_canonical_value(&mut s, "caf\u{e9}".as_bytes()));
        assert!(!push_canonical_value(&mut s, b"a\x00b"));
    }

    #[test]
    fn header_map_and_list_agree() {
        let mut m = http::HeaderMap::new();
        m.append("accept", "a".parse().unwrap());
        m.append("Accept", "b".parse().unwrap());
        let l: Vec<(String, Vec<u8>)> = vec![
            ("Accept".into(), b"a".to_vec()),
            ("ACCEPT".into(), b"b".to_vec()),
        ];
        let collect = |s: &dyn FieldSource| {
            let mut v = Vec::new();
            s.for_each_value("accept", &mut |x| v.push(x.to_vec()));
            v
        };
        assert_eq!(collect(&m), collect(&l));
        assert!(l.has_field("accept") && !l.has_field("host"));
    }
}

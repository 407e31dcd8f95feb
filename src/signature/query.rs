//! `@query-param` (RFC 9421 §2.2.8): query parsed as `application/x-www-form-urlencoded`
//! (WHATWG), names and values re-encoded with the urlencoded percent-encode set and `%20` for
//! space, as the RFC's own example does.

/// Outcome of looking a parameter up by its *encoded* name (the `name` component parameter).
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    Found(String),
    Missing,
    /// The RFC forbids signing a name that occurs more than once.
    Repeated,
}

/// Finds the parameter whose re-encoded name equals `encoded_name`; returns its re-encoded value.
pub fn lookup(query: &str, encoded_name: &str) -> Lookup {
    let mut found = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        if reencode(n) != encoded_name {
            continue;
        }
        if found.is_some() {
            return Lookup::Repeated;
        }
        found = Some(reencode(v));
    }
    found.map_or(Lookup::Missing, Lookup::Found)
}

/// WHATWG urlencoded decode (`+` → space, `%XX` → byte, stray `%` kept) then re-encode.
pub fn reencode(s: &str) -> String {
    let decoded = decode(s.as_bytes());
    let mut out = String::with_capacity(decoded.len());
    for b in decoded {
        if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') {
            out.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

fn decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                s.get(i + 1).and_then(|b| hex(*b)),
                s.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(h), Some(l)) => {
                    out.push((h << 4) | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        let q = "param=value&foo=bar&baz=batman&qux=";
        assert_eq!(lookup(q, "baz"), Lookup::Found("batman".into()));
        assert_eq!(lookup(q, "qux"), Lookup::Found("".into()));
        assert_eq!(lookup(q, "param"), Lookup::Found("value".into()));
        assert_eq!(lookup(q, "nope"), Lookup::Missing);
        let q = "var=this%20is%20a%20big%0Amultiline%20value&bar=with+plus+whitespace&fa%C3%A7ade%22%3A%20=something";
        assert_eq!(
            lookup(q, "var"),
            Lookup::Found("this%20is%20a%20big%0Amultiline%20value".into())
        );
        assert_eq!(
            lookup(q, "bar"),
            Lookup::Found("with%20plus%20whitespace".into())
        );
        assert_eq!(
            lookup(q, "fa%C3%A7ade%22%3A%20"),
            Lookup::Found("something".into())
        );
    }

    #[test]
    fn repeated_and_odd_input() {
        assert_eq!(lookup("a=1&a=2", "a"), Lookup::Repeated);
        assert_eq!(lookup("&&a&", "a"), Lookup::Found("".into()));
        assert_eq!(reencode("%zz%4"), "%25zz%254");
        assert_eq!(reencode("%2d"), "-");
    }
}

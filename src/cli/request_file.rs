//! Reading one raw HTTP/1.1 request from a file, as captured (`sigproxy verify --request`) or as
//! written by `sigproxy sign --emit-request`: CRLF or bare LF line ends, obs-fold kept so the
//! verifier canonicalises it, body framed by Content-Length or chunked coding.

use std::fmt;

/// A parsed request, fields in received order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRequest {
    pub method: String,
    pub target: String,
    pub version: String,
    pub fields: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(m: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(m.into()))
}

impl RawRequest {
    pub fn parse(data: &[u8]) -> Result<Self, ParseError> {
        let mut lines = LineReader { data, pos: 0 };
        let request_line = lines
            .next_line()
            .ok_or_else(|| ParseError("empty request".into()))?;
        let request_line = std::str::from_utf8(request_line)
            .map_err(|_| ParseError("request line is not UTF-8".into()))?;
        let mut parts = request_line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return err(format!(
                "request line {request_line:?} is not METHOD TARGET VERSION"
            ));
        };
        if method.is_empty() || target.is_empty() || !version.starts_with("HTTP/") {
            return err(format!(
                "request line {request_line:?} is not METHOD TARGET VERSION"
            ));
        }
        let mut fields: Vec<(String, Vec<u8>)> = Vec::new();
        loop {
            let Some(line) = lines.next_line() else {
                return err("the header section does not end with an empty line");
            };
            if line.is_empty() {
                break;
            }
            if matches!(line[0], b' ' | b'\t') {
                // obs-fold: keep the fold so canonicalisation replaces it, as the RFC says.
                let Some(last) = fields.last_mut() else {
                    return err("the first field line starts with whitespace");
                };
                last.1.extend_from_slice(b"\r\n");
                last.1.extend_from_slice(line);
                continue;
            }
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                return err(format!(
                    "field line {:?} has no colon",
                    String::from_utf8_lossy(line)
                ));
            };
            let name = std::str::from_utf8(&line[..colon])
                .ok()
                .filter(|n| is_token(n));
            let Some(name) = name else {
                return err(format!(
                    "field name {:?} is not a token",
                    String::from_utf8_lossy(&line[..colon])
                ));
            };
            fields.push((
                name.to_owned(),
                crate::signature::fields::trim_ows(&line[colon + 1..]).to_vec(),
            ));
        }
        let rest = &data[lines.pos..];
        let body = frame_body(&fields, rest)?;
        Ok(Self {
            method: method.into(),
            target: target.into(),
            version: version.into(),
            fields,
            body,
        })
    }

    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn frame_body(fields: &[(String, Vec<u8>)], rest: &[u8]) -> Result<Vec<u8>, ParseError> {
    let get = |n: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_slice())
    };
    if let Some(te) = get("transfer-encoding") {
        if !te.to_ascii_lowercase().ends_with(b"chunked") {
            return err("only chunked transfer coding is supported");
        }
        return decode_chunked(rest);
    }
    match get("content-length") {
        Some(cl) => {
            let n: usize = std::str::from_utf8(cl)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    ParseError(format!(
                        "Content-Length {:?} is not a number",
                        String::from_utf8_lossy(cl)
                    ))
                })?;
            if rest.len() < n {
                return err(format!(
                    "Content-Length is {n} but the file has {} body bytes",
                    rest.len()
                ));
            }
            Ok(rest[..n].to_vec())
        }
        // A captured file may lack framing; whatever follows the header section is the body.
        None => Ok(rest.to_vec()),
    }
}

fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>, ParseError> {
    let mut body = Vec::new();
    loop {
        let mut lr = LineReader { data, pos: 0 };
        let size_line = lr
            .next_line()
            .ok_or_else(|| ParseError("chunked body ends early".into()))?;
        let size_hex = size_line.split(|b| *b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size_hex)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| ParseError("bad chunk size line".into()))?;
        data = &data[lr.pos..];
        if size == 0 {
            return Ok(body);
        }
        if data.len() < size {
            return err("chunk is shorter than its size line says");
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size..];
        data = data
            .strip_prefix(b"\r\n")
            .or_else(|| data.strip_prefix(b"\n"))
            .ok_or_else(|| ParseError("chunk not followed by CRLF".into()))?;
    }
}

struct LineReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> LineReader<'a> {
    /// The next line without its CRLF or LF; `None` at the end of the data with no line end.
    fn next_line(&mut self) -> Option<&'a [u8]> {
        let rest = &self.data[self.pos..];
        let nl = rest.iter().position(|b| *b == b'\n')?;
        self.pos += nl + 1;
        let line = &rest[..nl];
        Some(line.strip_suffix(b"\r").unwrap_or(line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_crlf_and_lf() {
        for sep in ["\r\n", "\n"] {
            let raw = [
                "POST /foo?a=b HTTP/1.1",
                "Host: example.com",
                "Content-Length: 4",
                "X-Fold: a",
                "  b",
                "",
                "body",
            ]
            .join(sep);
            let r = RawRequest::parse(raw.as_bytes()).unwrap();
            assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/foo?a=b"));
            assert_eq!(r.field("host"), Some(&b"example.com"[..]));
            assert_eq!(r.field("x-fold"), Some(&b"a\r\n  b"[..]));
            assert_eq!(r.body, b"body");
        }
    }

    #[test]
    fn chunked_body() {
        let raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\n";
        assert_eq!(RawRequest::parse(raw).unwrap().body, b"Wikipedia");
    }

    #[test]
    fn clear_errors() {
        for (raw, want) in [
            (&b""[..], "empty"),
            (b"GET /\r\n\r\n", "METHOD TARGET VERSION"),
            (b"GET / HTTP/1.1\r\nHost example\r\n\r\n", "no colon"),
            (b"GET / HTTP/1.1\r\nHost: x\r\n", "empty line"),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc",
                "Content-Length is 9",
            ),
        ] {
            let e = RawRequest::parse(raw).unwrap_err();
            assert!(e.0.contains(want), "{e}");
        }
    }
}

//! Where the load generator's requests come from: one fixed GET, or a file of pre-built raw requests
//! (presign.py's `.reqs` format: header blocks each ending in CRLF CRLF, plus an optional body
//! appended to every one) handed out in file order, each once per cycle. It does not sign anything.

use std::ops::Range;

pub struct Source {
    blocks: Vec<u8>,
    spans: Vec<Range<usize>>,
    body: Vec<u8>,
    next: usize,
    /// How many times the list ran out and started again (each wrap repeats nonces).
    pub wraps: u64,
}

impl Source {
    /// A single GET for `path`, with the `Host` the target address gives.
    pub fn get(host: &str, path: &str) -> Self {
        let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes();
        let spans = std::iter::once(0..req.len()).collect();
        Self {
            blocks: req,
            spans,
            body: Vec::new(),
            next: 0,
            wraps: 0,
        }
    }

    /// Header blocks split out of `blocks`; `body` is appended to each when sent.
    pub fn from_blocks(blocks: Vec<u8>, body: Vec<u8>) -> Result<Self, String> {
        let mut spans = Vec::new();
        let mut pos = 0;
        while let Some(end) = blocks[pos..].windows(4).position(|w| w == b"\r\n\r\n") {
            spans.push(pos..pos + end + 4);
            pos += end + 4;
        }
        if pos != blocks.len() {
            return Err(format!(
                "{} bytes after the last CRLF CRLF",
                blocks.len() - pos
            ));
        }
        if spans.is_empty() {
            return Err("no requests".into());
        }
        Ok(Self {
            blocks,
            spans,
            body,
            next: 0,
            wraps: 0,
        })
    }

    pub fn count(&self) -> usize {
        self.spans.len()
    }

    /// Appends the next request to `out`.
    pub fn next_into(&mut self, out: &mut Vec<u8>) {
        if self.next == self.spans.len() {
            self.next = 0;
            self.wraps += 1;
        }
        out.extend_from_slice(&self.blocks[self.spans[self.next].clone()]);
        out.extend_from_slice(&self.body);
        self.next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_come_out_in_order_and_wraps_are_counted() {
        let blocks =
            b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\n";
        let mut s = Source::from_blocks(blocks.to_vec(), b"xy".to_vec()).unwrap();
        assert_eq!(s.count(), 2);
        let mut out = Vec::new();
        for _ in 0..5 {
            s.next_into(&mut out);
        }
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("GET /a").count(), 3);
        assert_eq!(text.matches("POST /b").count(), 2);
        assert!(text.starts_with("GET /a HTTP/1.1\r\nHost: h\r\n\r\nxyPOST /b"));
        assert_eq!(s.wraps, 2);
        assert!(Source::from_blocks(b"GET / HTTP/1.1\r\n\r\ntrailing".to_vec(), vec![]).is_err());
        assert!(Source::from_blocks(Vec::new(), vec![]).is_err());
    }
}

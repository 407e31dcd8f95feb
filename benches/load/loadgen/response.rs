//! Finds where one HTTP/1.1 response ends in a byte buffer (status line, headers, then a body framed
//! by Content-Length, chunked encoding, or the end of the connection). It does not keep bodies or
//! decode them: the load generator only needs the status and the response's length.

use std::fmt;

/// Headers a response may carry before we give up on it; sigproxy and nginx send a handful.
const MAX_HEADERS: usize = 64;
/// Longest chunk-size line (with extensions) we wait for before calling the response broken.
const MAX_CHUNK_LINE: usize = 1024;

/// What the front of a buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole response yet: read more.
    Partial,
    /// A 1xx interim response of `len` bytes (no body): skip it, the real one follows.
    Interim { len: usize },
    /// A whole response of `len` bytes. `close`: the server will not take another request here.
    Complete {
        status: u16,
        len: usize,
        close: bool,
    },
    /// No length given: the body runs until the server closes the connection.
    UntilClose { status: u16 },
}

/// A response we cannot frame; the connection is useless after it.
#[derive(Debug, PartialEq, Eq)]
pub struct FrameError(pub String);

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(what: impl Into<String>) -> FrameError {
    FrameError(what.into())
}

/// Frames the response at the front of `buf` (RFC 9112 §6.3, for responses to non-HEAD requests).
pub fn frame(buf: &[u8]) -> Result<Frame, FrameError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Frame::Partial),
        Err(e) => return Err(bad(format!("response head: {e}"))),
    };
    let status = resp.code.ok_or_else(|| bad("no status code"))?;
    if status == 101 {
        return Err(bad("101 Switching Protocols: not an HTTP/1.1 load target"));
    }
    if (100..200).contains(&status) {
        return Ok(Frame::Interim { len: head_len });
    }

    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut other_coding = false;
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        let v = std::str::from_utf8(h.value).map_err(|_| bad("non-UTF-8 header value"))?;
        if h.name.eq_ignore_ascii_case("content-length") {
            for part in v.split(',') {
                let n: usize = part
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("Content-Length {v:?}")))?;
                if content_length.is_some_and(|c| c != n) {
                    return Err(bad("conflicting Content-Length values"));
                }
                content_length = Some(n);
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding decides the framing; anything after `chunked` is not chunked.
            for coding in v.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                chunked = coding.eq_ignore_ascii_case("chunked");
                other_coding = !chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            for opt in v.split(',').map(str::trim) {
                if opt.eq_ignore_ascii_case("close") {
                    close = true;
                } else if opt.eq_ignore_ascii_case("keep-alive") && resp.version == Some(0) {
                    close = false;
                }
            }
        }
    }

    if status == 204 || status == 304 {
        return Ok(Frame::Complete {
            status,
            len: head_len,
            close,
        });
    }
    if chunked {
        return Ok(match chunked_len(&buf[head_len..])? {
            Some(n) => Frame::Complete {
                status,
                len: head_len + n,
                close,
            },
            None => Frame::Partial,
        });
    }
    if other_coding {
        return Ok(Frame::UntilClose { status });
    }
    match content_length {
        Some(n) => {
            let len = head_len
                .checked_add(n)
                .ok_or_else(|| bad("Content-Length overflows"))?;
            Ok(if buf.len() >= len {
                Frame::Complete { status, len, close }
            } else {
                Frame::Partial
            })
        }
        None => Ok(Frame::UntilClose { status }),
    }
}

/// Length of a whole chunked body (chunks, last chunk, trailers, final CRLF) at the front of `body`,
/// or `None` while it is incomplete.
fn chunked_len(body: &[u8]) -> Result<Option<usize>, FrameError> {
    let mut pos = 0;
    loop {
        let Some(line_end) = find_crlf(&body[pos..]) else {
            return if body.len() - pos > MAX_CHUNK_LINE {
                Err(bad("chunk-size line too long"))
            } else {
                Ok(None)
            };
        };
        let line = &body[pos..pos + line_end];
        let size_part = line.split(|&b| b == b';').next().unwrap_or(line);
        let size_str = std::str::from_utf8(size_part)
            .map_err(|_| bad("chunk size is not ASCII"))?
            .trim_matches([' ', '\t']);
        if size_str.is_empty() || size_str.len() > 15 {
            return Err(bad(format!("chunk size {size_str:?}")));
        }
        let size = usize::from_str_radix(size_str, 16)
            .map_err(|_| bad(format!("chunk size {size_str:?}")))?;
        pos += line_end + 2;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(end) = find_crlf(&body[pos..]) else {
                    return Ok(None);
                };
                pos += end + 2;
                if end == 0 {
                    return Ok(Some(pos));
                }
            }
        }
        if body.len() < pos + size + 2 {
            return Ok(None);
        }
        if &body[pos + size..pos + size + 2] != b"\r\n" {
            return Err(bad("chunk data not followed by CRLF"));
        }
        pos += size + 2;
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(status: u16, len: usize) -> Frame {
        Frame::Complete {
            status,
            len,
            close: false,
        }
    }

    #[test]
    fn content_length_frames_exactly_and_waits_for_the_body() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        assert_eq!(frame(r), Ok(complete(200, r.len())));
        // Every strict prefix is partial, never complete or an error.
        for cut in 0..r.len() {
            assert_eq!(frame(&r[..cut]), Ok(Frame::Partial), "cut at {cut}");
        }
        // Bytes after the response are not part of it.
        let mut two = r.to_vec();
        two.extend_from_slice(b"HTTP/1.1 401 Unauthorized\r\n");
        assert_eq!(frame(&two), Ok(complete(200, r.len())));
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let r =
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                  4;ext=1\r\nabcd\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\n";
        assert_eq!(
            frame(r),
            Ok(Frame::Complete {
                status: 401,
                len: r.len(),
                close: true
            })
        );
        for cut in 0..r.len() {
            assert_eq!(frame(&r[..cut]), Ok(Frame::Partial), "cut at {cut}");
        }
        let plain = b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(frame(plain), Ok(complete(200, plain.len())));
    }

    #[test]
    fn bodiless_interim_and_close_delimited() {
        let r = b"HTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n";
        assert_eq!(frame(r), Ok(complete(204, r.len())));
        let c = b"HTTP/1.1 100 Continue\r\n\r\n";
        assert_eq!(frame(c), Ok(Frame::Interim { len: c.len() }));
        assert_eq!(
            frame(b"HTTP/1.1 200 OK\r\n\r\nbody"),
            Ok(Frame::UntilClose { status: 200 })
        );
        let old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            frame(old),
            Ok(Frame::Complete {
                status: 200,
                len: old.len(),
                close: true
            })
        );
    }

    #[test]
    fn broken_framing_is_an_error() {
        for r in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"HTTQ/1.1 200 OK\r\n\r\n",
        ] {
            assert!(frame(r).is_err(), "{:?}", String::from_utf8_lossy(r));
        }
        let long = [
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
            &[b'1'; 2000],
        ]
        .concat();
        assert!(frame(&long).is_err());
    }
}

//! A JSON object written straight into one line: the audit line's encoder. The audit line is the
//! only log line written per request, and going through `tracing`'s JSON formatter (a serde map
//! per event, fields visited through `dyn Value`) cost more CPU than everything else sigproxy adds
//! to a passthrough request. Keys are ours, plain ASCII, each written with its punctuation as one
//! string built at compile time (`key!`); values are escaped per RFC 8259 §7. The timestamp's
//! date and time of day are formatted once per second per thread.

use std::cell::Cell;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// A member's name with the punctuation before its value, `,"name":`, spelled at compile time by
/// `key!` so a line writes it in one copy.
#[derive(Clone, Copy)]
pub struct Key(&'static str);

impl Key {
    /// `text` must be `,"<name>":` with a name that needs no escaping (what `key!` builds).
    pub const fn spelled(text: &'static str) -> Self {
        Self(text)
    }
}

/// `key!("status")` is the `Key` for `"status"`.
macro_rules! key {
    ($name:literal) => {
        $crate::observe::line::Key::spelled(concat!(",\"", $name, "\":"))
    };
}
pub(crate) use key;

pub struct JsonLine {
    buf: String,
}

impl JsonLine {
    /// `{"timestamp":"<RFC 3339, µs, UTC>","level":"<level>"` — the same leading members as the
    /// operational lines from `tracing`, so one parser reads both. Written into `buf` (emptied first): a caller that keeps one buffer per thread encodes a
    /// line without allocating.
    pub fn new_in(mut buf: String, at: SystemTime, level: &str) -> Self {
        buf.clear();
        buf.reserve(384);
        buf.push_str("{\"timestamp\":\"");
        push_rfc3339_micros(&mut buf, at);
        buf.push_str("\",\"level\":\"");
        buf.push_str(level);
        buf.push('"');
        Self { buf }
    }

    fn key(&mut self, k: Key) {
        self.buf.push_str(k.0);
    }

    pub fn str(&mut self, k: Key, v: &str) {
        self.key(k);
        push_json_str(&mut self.buf, v);
    }

    /// Omitted when `None`, as `tracing` omits an absent field.
    pub fn opt_str(&mut self, k: Key, v: Option<&str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }

    /// An address (no character of one needs escaping).
    pub fn ip(&mut self, k: Key, v: std::net::IpAddr) {
        self.key(k);
        self.buf.push('"');
        match crate::proxy::headers::ip_value(v)
            .as_ref()
            .and_then(|h| h.to_str().ok())
        {
            Some(text) => self.buf.push_str(text),
            None => crate::proxy::headers::push_ip(&mut self.buf, v),
        }
        self.buf.push('"');
    }

    pub fn bool(&mut self, k: Key, v: bool) {
        self.key(k);
        self.buf.push_str(if v { "true" } else { "false" });
    }

    pub fn uint(&mut self, k: Key, v: u64) {
        self.key(k);
        crate::proxy::headers::push_u64(&mut self.buf, v);
    }

    /// Milliseconds with microsecond resolution (`2.873`).
    pub fn millis(&mut self, k: Key, d: std::time::Duration) {
        self.key(k);
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        crate::proxy::headers::push_u64(&mut self.buf, us / 1000);
        let frac = us % 1000;
        self.buf.push('.');
        for d in [frac / 100, frac / 10 % 10, frac % 10] {
            self.buf.push(char::from(b'0' + d as u8));
        }
    }

    /// The closing members and the newline.
    pub fn finish(mut self, target: &str) -> String {
        self.str(key!("target"), target);
        self.buf.push_str("}\n");
        self.buf
    }
}

/// `s` as a JSON string: `"` and `\` escaped, control characters as `\n`-style or `\u00XX`;
/// everything else (including non-ASCII UTF-8) as it is.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut rest = s;
    while let Some(i) = first_to_escape(rest.as_bytes()) {
        out.push_str(&rest[..i]);
        let b = rest.as_bytes()[i];
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        // `b` is ASCII, so `i + 1` is a character boundary.
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

/// The index of the first byte JSON needs escaped (below 0x20, `"`, `\`). Eight bytes at a
/// time: a word with none of them is passed over in a few operations instead of eight compares
/// (the audit line's values are mostly short and clean).
fn first_to_escape(b: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Exact for "some byte of `x` is below `n`" (n <= 0x80): a byte's borrow can only set the
    // high bit of a byte above one that is already below `n`.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let special = |b: &u8| *b < 0x20 || *b == b'"' || *b == b'\\';
    let mut at = 0;
    for chunk in b.chunks_exact(8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(w);
        if below(x, 0x20)
            | below(x ^ (ONES * u64::from(b'"')), 1)
            | below(x ^ (ONES * u64::from(b'\\')), 1)
            != 0
        {
            return chunk.iter().position(special).map(|i| at + i);
        }
        at += 8;
    }
    b[at..].iter().position(special).map(|i| at + i)
}

/// `2026-11-23T22:24:43.814406Z`. Times before 1970 print as the epoch (a clock that far off
/// is not worth a branch of its own). The text up to the second is kept per thread and reused
/// while the second is the same; only the microseconds are written per call.
pub fn push_rfc3339_micros(out: &mut String, at: SystemTime) {
    thread_local! {
        /// The last second formatted on this thread, and its text.
        static SECOND: Cell<(u64, [u8; 27])> = const { Cell::new((u64::MAX, [0; 27])) };
    }
    let d = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let mut b = match SECOND.try_with(Cell::get) {
        Ok((s, text)) if s == secs => text,
        _ => {
            let text = second_text(secs);
            let _ = SECOND.try_with(|c| c.set((secs, text)));
            text
        }
    };
    put_digits(&mut b, 20, 6, u64::from(d.subsec_micros()));
    // All ASCII digits and punctuation: always UTF-8.
    if let Ok(s) = std::str::from_utf8(&b) {
        out.push_str(s);
    }
}

/// `2026-11-23T22:24:43.000000Z` for a second since the epoch.
fn second_text(secs: u64) -> [u8; 27] {
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    // Digits by hand: `write!` with width specifiers was most of this line's formatting cost.
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    put_digits(&mut b, 0, 4, y.clamp(0, 9999) as u64);
    put_digits(&mut b, 5, 2, u64::from(m));
    put_digits(&mut b, 8, 2, u64::from(day));
    put_digits(&mut b, 11, 2, sod / 3600);
    put_digits(&mut b, 14, 2, sod / 60 % 60);
    put_digits(&mut b, 17, 2, sod % 60);
    b
}

/// `v`'s last `width` decimal digits into `b[at..at + width]`, zero-padded.
fn put_digits(b: &mut [u8; 27], at: usize, width: usize, mut v: u64) {
    for d in b[at..at + width].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, micros: u32) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(u64::from(micros))
    }

    fn ts(t: SystemTime) -> String {
        let mut s = String::new();
        push_rfc3339_micros(&mut s, t);
        s
    }

    #[test]
    fn timestamps() {
        assert_eq!(ts(at(0, 0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(ts(at(951_782_400, 1)), "2000-02-29T00:00:00.000001Z");
        assert_eq!(
            ts(at(1_700_000_000, 123_456)),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            ts(at(4_107_542_399, 999_999)),
            "2100-02-28T23:59:59.999999Z"
        );
        assert_eq!(ts(at(4_107_542_400, 0)), "2100-03-01T00:00:00.000000Z");
    }

    #[test]
    fn timestamps_reuse_the_second_only_within_it() {
        // Across second, minute, day and year boundaries, back and forth (the per-thread second
        // must never leak into another one), against the text built from scratch.
        let edges = [
            0u64,
            59,
            60,
            86_399,
            86_400,
            951_868_799,
            951_868_800,
            1_700_000_000,
            1_735_689_599,
            1_735_689_600,
        ];
        for &a in &edges {
            for &b in &edges {
                for (secs, micros) in [(a, 0u32), (b, 999_999), (a, 500_000), (a + 1, 1)] {
                    let mut want = String::from_utf8(second_text(secs).to_vec()).unwrap();
                    want.replace_range(20..26, &format!("{micros:06}"));
                    assert_eq!(ts(at(secs, micros)), want, "{secs}.{micros}");
                }
            }
        }
    }

    #[test]
    fn the_escape_scan_finds_the_first_special_byte_at_every_offset() {
        // Every byte value at every offset of strings up to 3 words long, against a plain scan.
        let plain = |b: &[u8]| b.iter().position(|&c| c < 0x20 || c == b'"' || c == b'\\');
        for len in 0..=24 {
            for at in 0..len {
                for v in 0..=255u8 {
                    let mut b = vec![b'a'; len];
                    b[at] = v;
                    assert_eq!(first_to_escape(&b), plain(&b), "{len} {at} {v}");
                    // A clean byte above 0x7f and a special one behind it in the same word.
                    if at + 1 < len {
                        b[at + 1] = b'"';
                        assert_eq!(first_to_escape(&b), plain(&b), "{len} {at} {v} +quote");
                    }
                }
            }
        }
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // Against a plain day-by-day calendar walk: 146,097 days, bounded.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for z in 0..146_097 {
            assert_eq!(civil_from_days(z), (y, m, d), "day {z}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > len[m as usize - 1] {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn strings_escape_like_serde_json() {
        for s in [
            "plain",
            "",
            "quote \" and backslash \\",
            "ctl \u{0} \u{1f} \n\r\t\u{8}\u{c}",
            "unicode é ✓ 😀 \u{7f}",
            "ag\"ent\\x01",
        ] {
            let mut ours = String::new();
            push_json_str(&mut ours, s);
            assert_eq!(ours, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn a_line_is_one_json_object() {
        let mut l = JsonLine::new_in(String::new(), at(1_700_000_000, 5), "INFO");
        l.str(key!("event_type"), "exempt");
        l.opt_str(key!("client_id"), None);
        l.opt_str(key!("key_id"), Some("k\"1"));
        l.ip(
            key!("source_ip"),
            "::1".parse::<std::net::IpAddr>().unwrap(),
        );
        l.str(key!("odd"), "a\"b");
        l.bool(key!("dry_run"), false);
        l.uint(key!("status"), 200);
        l.millis(key!("latency_ms"), Duration::from_micros(2_873));
        let line = l.finish("audit");
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.000005Z");
        assert_eq!(v["level"], "INFO");
        assert!(v.get("client_id").is_none());
        assert_eq!(v["key_id"], "k\"1");
        assert_eq!(v["source_ip"], "::1");
        assert_eq!(v["odd"], "a\"b");
        assert_eq!(v["dry_run"], false);
        assert_eq!(v["status"], 200);
        assert_eq!(v["latency_ms"], 2.873);
        assert_eq!(v["target"], "audit");
    }
}

#[cfg(test)]
mod numbers {
    use super::*;
    use std::net::IpAddr;
    use std::time::Duration;

    /// The hand-written numbers against `core::fmt`, at their edges.
    #[test]
    fn digits_match_fmt() {
        let mut l = JsonLine::new_in(String::new(), UNIX_EPOCH, "INFO");
        for v in [0u64, 7, 10, 99, 200, 1_000_000, u64::MAX] {
            l.uint(key!("n"), v);
            assert!(l.buf.ends_with(&format!("\"n\":{v}")), "{v}");
        }
        for us in [
            0u64,
            1,
            9,
            10,
            99,
            100,
            999,
            1_000,
            2_873,
            60_000_001,
            u64::MAX / 2,
        ] {
            l.millis(key!("ms"), Duration::from_micros(us));
            let want = format!("\"ms\":{}.{:03}", us / 1000, us % 1000);
            assert!(
                l.buf.ends_with(&want),
                "{us}: {}",
                &l.buf[l.buf.len() - 40..]
            );
        }
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.200.3.255",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            l.ip(key!("source_ip"), ip);
            assert!(l.buf.ends_with(&format!("\"source_ip\":\"{ip}\"")), "{ip}");
        }
    }
}

//! `sigproxy demo` needs nothing else: it starts, prints three `sigproxy sign … --send` lines,
//! and those lines give an accepted, a rejected and a legacy request, as printed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn shell_words(line: &str) -> Vec<String> {
    // The demo's lines use single quotes only, without escapes inside.
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[test]
fn demo_prints_three_working_requests() {
    let exe = env!("CARGO_BIN_EXE_sigproxy");
    let mut child = Command::new(exe)
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _guard = Kill(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with(exe) && tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    while lines.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        lines.push(rx.recv_timeout(left).expect("demo printed its three lines"));
    }
    let run = |line: &str| {
        let words = shell_words(line);
        let out = Command::new(&words[0]).args(&words[1..]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(&lines[0]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("\"x-datafold-client-id\": \"demo-client\""),
        "{out}"
    );
    assert!(
        out.contains("\"x-datafold-auth-method\": \"signature\""),
        "{out}"
    );
    let (code, out) = run(&lines[1]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("HTTP/1.1 401") && out.contains("KEY_REVOKED"),
        "{out}"
    );
    let (code, out) = run(&lines[2]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("\"x-datafold-auth-method\": \"legacy\""),
        "{out}"
    );
    assert!(
        !out.contains("\"admin\""),
        "forged identity reached the backend: {out}"
    );
}

//! Open-loop, constant-rate HTTP/1.1 load generator for the load harness (a stand-in for wrk2, which
//! Debian does not ship). Requests go out on a fixed schedule, `--rate` per second in total over
//! `--connections` keep-alive connections, and each one's latency is counted from the time the
//! schedule meant to send it, so a stalled server (or a stalled generator) shows up in the tail
//! instead of silently slowing the offered load (coordinated omission). It targets 127.0.0.1 only,
//! does not pipeline, and prints one JSON line; it is a benchmark tool, not a test.
//!
//! `cargo run --release --example loadgen -- --addr 127.0.0.1:8080 --rate 2000 --duration 10`

#[path = "loadgen/response.rs"]
mod response;
#[path = "loadgen/source.rs"]
mod source;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

use response::Frame;
use source::Source;

/// Largest response we buffer; the harness's upstream answers "ok\n".
const MAX_RESPONSE: usize = 64 << 20;

#[derive(Parser)]
#[command(about = "constant-rate HTTP/1.1 load generator (127.0.0.1 only), one JSON line out")]
struct Args {
    /// Target, 127.0.0.1:PORT.
    #[arg(long)]
    addr: SocketAddr,
    /// Requests per second, all connections together.
    #[arg(long)]
    rate: f64,
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds at the same rate before measuring (sent, not counted).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Path of the plain GET sent when no --requests file is given.
    #[arg(long, default_value = "/")]
    path: String,
    /// File of raw request header blocks (presign.py's .reqs), sent in order, wrapping around.
    #[arg(long)]
    requests: Option<PathBuf>,
    /// Body appended to every request of --requests (presign.py's .reqs.body).
    #[arg(long)]
    body: Option<PathBuf>,
    /// Seconds to wait for each TCP connect.
    #[arg(long, default_value_t = 2.0)]
    connect_timeout: f64,
    /// Seconds after the schedule ends to wait for outstanding responses; later ones are `unsent`
    /// (never written) or `errors` (written, unanswered).
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
}

/// The schedule's landmarks. Requests meant for [measure_from, end) are the measured ones.
#[derive(Clone, Copy)]
struct Window {
    measure_from: Instant,
    end: Instant,
    deadline: Instant,
}

impl Window {
    fn measured(&self, t: Instant) -> bool {
        t >= self.measure_from && t < self.end
    }
}

/// One connection's counts, merged at the end.
#[derive(Default)]
struct Tally {
    /// Intended send time → whole response read, in µs, for measured requests.
    latency_us: Vec<u64>,
    /// Intended send time → first write, in µs: the generator's own lateness (or a busy connection).
    lag_us: Vec<u64>,
    /// Responses completed inside the measured window, whenever they were meant to be sent.
    done_in_window: u64,
    responses: u64,
    errors: u64,
    non_2xx: u64,
    unsent: u64,
    first_error: Option<String>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    if ok { Ok(()) } else { Err(what.to_owned()) }
}

fn run(a: Args) -> Result<serde_json::Value, String> {
    check(
        a.addr.ip() == Ipv4Addr::LOCALHOST,
        "--addr must be 127.0.0.1:PORT",
    )?;
    check(
        a.rate > 0.0 && a.rate <= 1e6,
        "--rate must be in (0, 1000000]",
    )?;
    check(
        (1..=10_000).contains(&a.connections),
        "--connections must be 1..=10000",
    )?;
    check(
        a.duration > 0.0 && a.duration <= 3600.0,
        "--duration must be in (0, 3600] s",
    )?;
    check(
        (0.0..=600.0).contains(&a.warmup),
        "--warmup must be in [0, 600] s",
    )?;
    check(
        a.connect_timeout > 0.0 && a.connect_timeout <= 30.0,
        "--connect-timeout: (0, 30] s",
    )?;
    check(
        (0.0..=60.0).contains(&a.drain),
        "--drain must be in [0, 60] s",
    )?;
    check(
        a.body.is_none() || a.requests.is_some(),
        "--body needs --requests",
    )?;

    let source = match &a.requests {
        None => Source::get(&a.addr.to_string(), &a.path),
        Some(p) => {
            let blocks = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
            let body = match &a.body {
                Some(b) => std::fs::read(b).map_err(|e| format!("{}: {e}", b.display()))?,
                None => Vec::new(),
            };
            Source::from_blocks(blocks, body).map_err(|e| format!("{}: {e}", p.display()))?
        }
    };
    let source_count = source.count();
    let source = Arc::new(Mutex::new(source));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let tallies = rt.block_on(drive(&a, source.clone()))?;
    let wraps = source.lock().unwrap_or_else(PoisonError::into_inner).wraps;
    Ok(report(&a, tallies, wraps, source_count))
}

/// Connects, runs the schedule, and returns each connection's tally.
async fn drive(a: &Args, source: Arc<Mutex<Source>>) -> Result<Vec<Tally>, String> {
    let connect_timeout = Duration::from_secs_f64(a.connect_timeout);
    let mut streams = Vec::with_capacity(a.connections);
    for _ in 0..a.connections {
        streams.push(connect(a.addr, Instant::now() + connect_timeout).await?);
    }
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + Duration::from_secs_f64(a.warmup + a.duration);
    let w = Window {
        measure_from: start + Duration::from_secs_f64(a.warmup),
        end,
        deadline: end + Duration::from_secs_f64(a.drain),
    };

    let mut senders = Vec::with_capacity(a.connections);
    let mut tasks = Vec::with_capacity(a.connections);
    for stream in streams {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        let conn = Conn {
            addr: a.addr,
            connect_timeout,
            source: source.clone(),
            w,
        };
        tasks.push(tokio::spawn(conn.run(stream, rx)));
    }
    // The schedule runs on its own OS thread: tokio's timers tick in whole milliseconds, which would
    // add up to 1 ms to every latency; thread::sleep wakes within tens of µs.
    let (rate, total) = (a.rate, ((a.warmup + a.duration) * a.rate).ceil() as u64);
    let start_std = start.into_std();
    let ticker = std::thread::spawn(move || {
        let c = senders.len() as u64;
        for n in 0..total {
            let intended = start_std + Duration::from_secs_f64(n as f64 / rate);
            let now = std::time::Instant::now();
            if intended > now {
                std::thread::sleep(intended - now);
            }
            // A closed receiver means that connection gave up at the deadline; keep the others fed.
            let _ = senders[(n % c) as usize].send(Instant::from_std(intended));
        }
    });

    let mut tallies = Vec::with_capacity(tasks.len());
    for t in tasks {
        tallies.push(t.await.map_err(|e| format!("connection task: {e}"))?);
    }
    ticker
        .join()
        .map_err(|_| "the schedule thread panicked".to_owned())?;
    Ok(tallies)
}

async fn connect(addr: SocketAddr, by: Instant) -> Result<TcpStream, String> {
    let s = timeout_at(by, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connect to {addr}: timed out"))?
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    Ok(s)
}

struct Conn {
    addr: SocketAddr,
    connect_timeout: Duration,
    source: Arc<Mutex<Source>>,
    w: Window,
}

impl Conn {
    /// Serves this connection's share of the schedule, one request at a time: a request whose time
    /// comes while the previous one is outstanding waits, and its wait counts in its latency.
    async fn run(self, first: TcpStream, mut ticks: mpsc::UnboundedReceiver<Instant>) -> Tally {
        let mut t = Tally::default();
        let mut stream = Some(first);
        let (mut wbuf, mut rbuf) = (Vec::new(), Vec::with_capacity(16 << 10));
        loop {
            let intended = match timeout_at(self.w.deadline, ticks.recv()).await {
                Ok(Some(i)) if Instant::now() < self.w.deadline => i,
                Ok(None) => break,
                late @ (Ok(Some(_)) | Err(_)) => {
                    if let Ok(Some(i)) = late {
                        t.unsent += u64::from(self.w.measured(i));
                    }
                    ticks.close();
                    while let Ok(i) = ticks.try_recv() {
                        t.unsent += u64::from(self.w.measured(i));
                    }
                    break;
                }
            };
            let began = Instant::now();
            match self.exchange(&mut stream, &mut wbuf, &mut rbuf).await {
                Ok(status) => {
                    let done = Instant::now();
                    t.responses += 1;
                    t.done_in_window += u64::from(done >= self.w.measure_from && done < self.w.end);
                    if self.w.measured(intended) {
                        t.latency_us.push(micros(done - intended));
                        t.lag_us
                            .push(micros(began.saturating_duration_since(intended)));
                        t.non_2xx += u64::from(!(200..300).contains(&status));
                    }
                }
                Err(e) => {
                    t.errors += 1;
                    t.first_error.get_or_insert(e);
                    stream = None;
                }
            }
        }
        t
    }

    /// Sends the next request and reads its response; `stream` is emptied when the connection must
    /// not be reused.
    async fn exchange(
        &self,
        stream: &mut Option<TcpStream>,
        wbuf: &mut Vec<u8>,
        rbuf: &mut Vec<u8>,
    ) -> Result<u16, String> {
        let deadline = self.w.deadline;
        if stream.is_none() {
            *stream = Some(
                connect(
                    self.addr,
                    deadline.min(Instant::now() + self.connect_timeout),
                )
                .await?,
            );
        }
        let Some(s) = stream.as_mut() else {
            return Err("no connection".into());
        };
        wbuf.clear();
        self.source
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_into(wbuf);
        timeout_at(deadline, s.write_all(wbuf))
            .await
            .map_err(|_| "write: past the deadline".to_owned())?
            .map_err(|e| format!("write: {e}"))?;
        rbuf.clear();
        loop {
            match response::frame(rbuf).map_err(|e| e.to_string())? {
                Frame::Interim { len } => {
                    rbuf.drain(..len);
                    continue;
                }
                Frame::Complete { status, len, close } => {
                    if rbuf.len() != len {
                        return Err("bytes after the response (unrequested data)".into());
                    }
                    if close {
                        *stream = None;
                    }
                    return Ok(status);
                }
                Frame::UntilClose { status } => {
                    while read_more(s, rbuf, deadline).await? > 0 {}
                    *stream = None;
                    return Ok(status);
                }
                Frame::Partial => {
                    if read_more(s, rbuf, deadline).await? == 0 {
                        return Err("connection closed mid-response".into());
                    }
                }
            }
        }
    }
}

async fn read_more(
    s: &mut TcpStream,
    rbuf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<usize, String> {
    if rbuf.len() >= MAX_RESPONSE {
        return Err(format!("response over {MAX_RESPONSE} bytes"));
    }
    rbuf.reserve(16 << 10);
    timeout_at(deadline, s.read_buf(rbuf))
        .await
        .map_err(|_| "read: no response by the deadline".to_owned())?
        .map_err(|e| format!("read: {e}"))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Nearest-rank percentile of sorted values (0 when there are none).
fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // The epsilon keeps float error (99.9% of 1000 = 999.0000000000001) off the next rank.
    let rank = ((p / 100.0) * sorted.len() as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(a: &Args, tallies: Vec<Tally>, wraps: u64, source_count: usize) -> serde_json::Value {
    let mut all = Tally::default();
    for t in tallies {
        all.latency_us.extend(t.latency_us);
        all.lag_us.extend(t.lag_us);
        all.done_in_window += t.done_in_window;
        all.responses += t.responses;
        all.errors += t.errors;
        all.non_2xx += t.non_2xx;
        all.unsent += t.unsent;
        all.first_error = all.first_error.or(t.first_error);
    }
    if let Some(e) = &all.first_error {
        eprintln!("loadgen: {} errors, the first: {e}", all.errors);
    }
    all.latency_us.sort_unstable();
    all.lag_us.sort_unstable();
    let l = &all.latency_us;
    serde_json::json!({
        "offered_rps": a.rate,
        "achieved_rps": (all.done_in_window as f64 / a.duration).round() as u64,
        "connections": a.connections,
        "duration_s": a.duration,
        "warmup_s": a.warmup,
        "requests": l.len(),
        "errors": all.errors,
        "non_2xx": all.non_2xx,
        "unsent": all.unsent,
        "responses_total": all.responses,
        "source_requests": source_count,
        "wraps": wraps,
        "p50_us": pct(l, 50.0),
        "p90_us": pct(l, 90.0),
        "p99_us": pct(l, 99.0),
        "p999_us": pct(l, 99.9),
        "max_us": l.last().copied().unwrap_or(0),
        "send_lag_p50_us": pct(&all.lag_us, 50.0),
        "send_lag_p99_us": pct(&all.lag_us, 99.0),
    })
}

#[cfg(test)]
mod tests {
    use super::pct;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=1000).collect();
        assert_eq!(pct(&v, 50.0), 500);
        assert_eq!(pct(&v, 99.0), 990);
        assert_eq!(pct(&v, 99.9), 999);
        assert_eq!(pct(&v, 100.0), 1000);
        assert_eq!(pct(&[7], 99.9), 7);
        assert_eq!(pct(&[], 50.0), 0);
    }
}

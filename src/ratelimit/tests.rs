//! Unit tests of the failure limiter on an injected clock: the allowance, the rolling window and
//! Retry-After, address grouping, the memory bound and its eviction order, and thread safety.

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Barrier};

/// A multiple of BUCKET_SECS, so bucket boundaries fall on round offsets from it.
const T0: u64 = 1_700_000_000;

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

/// The limiter with one limit for every call, as a policy that does not change would give it.
struct Limiter {
    inner: FailureLimiter,
    per_minute: u32,
}

impl Limiter {
    fn new(per_minute: u32, max_tracked: usize) -> Self {
        Self {
            inner: FailureLimiter::new(max_tracked),
            per_minute,
        }
    }

    fn check(&self, ip: IpAddr, now: u64) -> RateDecision {
        self.inner.check(ip, now, self.per_minute)
    }

    fn record_failure(&self, ip: IpAddr, now: u64) {
        self.inner.record_failure(ip, now, self.per_minute)
    }

    fn tracked(&self) -> usize {
        self.inner.tracked()
    }
}

fn fail(l: &Limiter, ip: IpAddr, now: u64, times: u32) {
    for _ in 0..times {
        l.record_failure(ip, now);
    }
}

fn limited(retry_after_secs: u64) -> RateDecision {
    RateDecision::Limited { retry_after_secs }
}

#[test]
fn zero_per_minute_is_disabled_and_stores_nothing() {
    let l = Limiter::new(0, 100);
    fail(&l, v4(1), T0, 1000);
    assert_eq!(l.check(v4(1), T0), RateDecision::Allowed);
    assert_eq!(l.tracked(), 0);
}

#[test]
fn the_limit_is_the_one_passed_with_each_call() {
    let l = FailureLimiter::new(100);
    for _ in 0..3 {
        l.record_failure(v4(1), T0, 10);
    }
    assert_eq!(l.check(v4(1), T0, 10), RateDecision::Allowed);
    // A reload lowers the limit: the failures already counted apply to it at once.
    assert!(matches!(
        l.check(v4(1), T0, 3),
        RateDecision::Limited { .. }
    ));
    // ... and turning it off lets everyone through, and counts nothing more.
    assert_eq!(l.check(v4(1), T0, 0), RateDecision::Allowed);
    l.record_failure(v4(2), T0, 0);
    assert_eq!(l.tracked(), 1);
}

#[test]
fn limited_once_the_allowance_is_used_until_the_window_passes() {
    let l = Limiter::new(5, 100);
    fail(&l, v4(1), T0, 4);
    assert_eq!(l.check(v4(1), T0), RateDecision::Allowed);
    fail(&l, v4(1), T0, 1);
    // Failures in bucket T0..T0+5 leave the window when bucket T0+65 begins.
    assert_eq!(l.check(v4(1), T0), limited(65));
    assert_eq!(l.check(v4(1), T0 + 4), limited(61));
    assert_eq!(l.check(v4(1), T0 + 59), limited(6));
    assert_eq!(l.check(v4(1), T0 + 64), limited(1));
    assert_eq!(l.check(v4(1), T0 + 65), RateDecision::Allowed);
}

#[test]
fn never_more_than_per_minute_failures_in_any_sixty_seconds() {
    // A caller that fails whenever it is allowed, once a second, for ten minutes; started at each
    // offset within a bucket, since failures late in a bucket are the ones a short window lets through.
    for start in T0..T0 + BUCKET_SECS {
        let l = Limiter::new(3, 100);
        let mut failures = Vec::new();
        for t in start..start + 600 {
            if l.check(v4(1), t) == RateDecision::Allowed {
                l.record_failure(v4(1), t);
                failures.push(t);
            }
        }
        for (i, &t) in failures.iter().enumerate() {
            let in_window = failures[i..].iter().take_while(|&&u| u < t + 60).count();
            assert!(
                in_window <= 3,
                "{in_window} failures in the minute from {t}"
            );
        }
        // ...yet it is not locked out for good: about 3 per 65 s.
        assert!(
            failures.len() >= 24,
            "only {} failures allowed",
            failures.len()
        );
    }
}

#[test]
fn the_window_rolls_bucket_by_bucket() {
    let l = Limiter::new(5, 100);
    fail(&l, v4(1), T0, 3);
    fail(&l, v4(1), T0 + 30, 2);
    // Limited until the 3 from T0 leave; the 2 from T0+30 alone are under the limit.
    assert_eq!(l.check(v4(1), T0 + 31), limited(34));
    assert_eq!(l.check(v4(1), T0 + 65), RateDecision::Allowed);
    fail(&l, v4(1), T0 + 65, 3);
    // 2 (T0+30) + 3 (T0+65): limited until T0+30's bucket leaves at T0+95.
    assert_eq!(l.check(v4(1), T0 + 66), limited(29));
}

#[test]
fn retry_after_waits_for_as_few_buckets_as_needed() {
    let l = Limiter::new(4, 100);
    fail(&l, v4(1), T0, 1);
    fail(&l, v4(1), T0 + 10, 1);
    fail(&l, v4(1), T0 + 20, 6);
    // Only dropping T0+20's bucket brings 8 under 4.
    assert_eq!(l.check(v4(1), T0 + 20), limited(65));
}

#[test]
fn addresses_are_counted_apart_and_ipv6_by_slash_64() {
    let l = Limiter::new(2, 100);
    fail(&l, v4(1), T0, 2);
    assert!(matches!(l.check(v4(1), T0), RateDecision::Limited { .. }));
    assert_eq!(l.check(v4(2), T0), RateDecision::Allowed);

    let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
    let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
    let other: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
    l.record_failure(IpAddr::V6(a), T0);
    l.record_failure(IpAddr::V6(b), T0);
    assert!(matches!(
        l.check(IpAddr::V6(a), T0),
        RateDecision::Limited { .. }
    ));
    assert_eq!(l.check(IpAddr::V6(other), T0), RateDecision::Allowed);

    // An IPv4-mapped IPv6 peer is the IPv4 address.
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    assert!(matches!(l.check(mapped, T0), RateDecision::Limited { .. }));
    // ...and the IPv6 ::/64 (where mapped addresses live) is not confused with IPv4.
    l.record_failure(IpAddr::V6(Ipv6Addr::LOCALHOST), T0);
    l.record_failure(IpAddr::V6(Ipv6Addr::LOCALHOST), T0);
    assert_eq!(l.check(v4(2), T0), RateDecision::Allowed);
    assert_eq!(
        l.check(IpAddr::V4(Ipv4Addr::UNSPECIFIED), T0),
        RateDecision::Allowed
    );
}

#[test]
fn memory_is_bounded_and_the_least_recent_is_forgotten() {
    let l = Limiter::new(1, 4); // one shard of 4
    for last in 1..=4 {
        l.record_failure(v4(last), T0);
    }
    // Touch .1 so that .2 becomes the least recent.
    l.record_failure(v4(1), T0 + 1);
    l.record_failure(v4(5), T0 + 2);
    assert_eq!(l.tracked(), 4);
    assert_eq!(
        l.check(v4(2), T0 + 2),
        RateDecision::Allowed,
        ".2 should be forgotten"
    );
    for last in [1, 3, 4, 5] {
        assert!(
            matches!(l.check(v4(last), T0 + 2), RateDecision::Limited { .. }),
            ".{last}"
        );
    }
}

#[test]
fn rotating_addresses_cannot_grow_memory() {
    let l = Limiter::new(3, 2048); // two shards of 1024
    for i in 0..50_000u32 {
        l.record_failure(IpAddr::V4(Ipv4Addr::from(i)), T0 + u64::from(i / 1000));
    }
    assert!(l.tracked() <= 2048, "{} tracked", l.tracked());
    for shard in l.inner.shards.iter() {
        let lru = lock(shard);
        assert!(lru.nodes.len() <= lru.cap && lru.index.len() <= lru.cap);
    }
}

#[test]
fn quiet_addresses_are_dropped_without_a_scan() {
    let l = Limiter::new(3, 100);
    for last in 1..=10 {
        l.record_failure(v4(last), T0);
    }
    assert_eq!(l.tracked(), 10);
    // 65 s later every earlier address is out of the window; the next failure drops them.
    l.record_failure(v4(99), T0 + 65);
    assert_eq!(l.tracked(), 1);
    // Freed slots are reused rather than the slab growing.
    for last in 1..=10 {
        l.record_failure(v4(last), T0 + 66);
    }
    assert_eq!(lock(&l.inner.shards[0]).nodes.len(), 11);
}

#[test]
fn a_clock_stepping_back_keeps_counting() {
    let l = Limiter::new(2, 100);
    l.record_failure(v4(1), T0);
    l.record_failure(v4(1), T0 - 3600);
    assert!(matches!(
        l.check(v4(1), T0 - 3600),
        RateDecision::Limited { .. }
    ));
    assert!(matches!(l.check(v4(1), T0), RateDecision::Limited { .. }));
    assert_eq!(l.check(v4(1), T0 + 65), RateDecision::Allowed);
}

#[test]
fn concurrent_failures_are_all_counted() {
    const THREADS: u32 = 8;
    const EACH: u32 = 100;
    for (limit, expect_limited) in [(THREADS * EACH, true), (THREADS * EACH + 1, false)] {
        let l = Arc::new(Limiter::new(limit, DEFAULT_MAX_TRACKED));
        let barrier = Arc::new(Barrier::new(THREADS as usize));
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let (l, barrier) = (Arc::clone(&l), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    fail(&l, v4(7), T0, EACH);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let got = matches!(l.check(v4(7), T0), RateDecision::Limited { .. });
        assert_eq!(got, expect_limited, "limit {limit}");
    }
}

#[test]
fn shard_counts_are_powers_of_two_and_caps_add_up() {
    for (max, shards) in [(1, 1), (2047, 1), (2048, 2), (65_536, 16), (usize::MAX, 16)] {
        assert_eq!(shard_count(max), shards, "max {max}");
    }
    let l = Limiter::new(1, 10_000);
    let total: usize = l.inner.shards.iter().map(|s| lock(s).cap).sum();
    assert_eq!(total, 10_000);
}

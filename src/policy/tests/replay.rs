//! `replay:` and `readiness:`: the three ways to name Redis, the secrets by file or environment
//! variable (never inline), TLS files, and the mistakes each is refused with.

use super::{errs, ok, one_err};
use crate::policy::{
    OnReadyTimeout, ReadinessPolicy, RedisTarget, RedisTopology, ReplayBackend, ReplayScope,
    SecretSource,
};

fn target(text: &str) -> RedisTarget {
    match ok(text).file.replay.backend {
        ReplayBackend::Redis(t) => t,
        other => panic!("expected a redis store, got {other:?}"),
    }
}

#[test]
fn standalone_cluster_and_sentinel_forms() {
    let t = target(
        "replay:\n  store: redis\n  redis_url: \"rediss://r:6380/2\"\n  redis_password_file: /etc/sigproxy/redis/password\n  redis_ca_file: /etc/sigproxy/redis/ca.crt\n",
    );
    assert_eq!(
        t.topology,
        RedisTopology::Standalone {
            url: "rediss://r:6380/2".into()
        }
    );
    assert_eq!(
        t.password,
        Some(SecretSource::File("/etc/sigproxy/redis/password".into()))
    );
    assert_eq!(t.ca_file.as_deref(), Some("/etc/sigproxy/redis/ca.crt"));
    assert_eq!(
        t.to_string(),
        "rediss://r:6380/2, password from file /etc/sigproxy/redis/password, CA /etc/sigproxy/redis/ca.crt"
    );

    let t = target(
        "replay:\n  store: redis\n  redis_cluster_nodes: [\"redis://a:6379\", \"redis://:pw@b:6379\"]\n  redis_password_env: REDIS_PASSWORD\n",
    );
    assert_eq!(
        t.topology,
        RedisTopology::Cluster {
            nodes: vec!["redis://a:6379".into(), "redis://:pw@b:6379".into()]
        }
    );
    assert_eq!(t.password, Some(SecretSource::Env("REDIS_PASSWORD".into())));
    assert!(!t.to_string().contains("pw@"), "{t}");

    let t = target(
        "replay:\n  store: redis\n  redis_sentinels: [\"redis://s1:26379\", \"redis://s2:26379\"]\n  redis_sentinel_master: mymaster\n  redis_client_cert_file: /c.crt\n  redis_client_key_file: /c.key\n",
    );
    assert_eq!(
        t.topology,
        RedisTopology::Sentinel {
            sentinels: vec!["redis://s1:26379".into(), "redis://s2:26379".into()],
            master: "mymaster".into()
        }
    );
    assert_eq!(t.client_cert_file.as_deref(), Some("/c.crt"));
    assert_eq!(
        ok("mode: hybrid").file.replay.backend.scope(),
        ReplayScope::Process
    );
    assert_eq!(
        ok("replay: { store: redis, redis_url: \"redis://r\" }")
            .file
            .replay
            .backend
            .scope(),
        ReplayScope::Shared
    );
}

#[test]
fn mistakes_are_refused_with_their_place() {
    for (text, want) in [
        (
            "replay:\n  store: redis\n  redis_url: \"redis://a\"\n  redis_cluster_nodes: [\"redis://b\"]\n",
            "p.yaml:4:24: replay.redis_cluster_nodes: redis_url and redis_cluster_nodes are different ways to name the Redis store; give one",
        ),
        (
            "replay:\n  store: redis\n  redis_sentinels: [\"redis://s:26379\"]\n",
            "p.yaml:3:20: replay.redis_sentinel_master: redis_sentinels needs redis_sentinel_master (the name the sentinels monitor, e.g. mymaster)",
        ),
        (
            "replay:\n  store: redis\n  redis_url: \"redis://a\"\n  redis_sentinel_master: m\n",
            "p.yaml:4:26: replay.redis_sentinel_master: redis_sentinel_master is used only with redis_sentinels",
        ),
        (
            "replay:\n  store: redis\n  redis_cluster_nodes: []\n",
            "p.yaml:3:24: replay.redis_cluster_nodes: needs at least one redis:// or rediss:// URL",
        ),
        (
            "replay:\n  store: redis\n  redis_cluster_nodes: [\"http://:pw@a\"]\n",
            "p.yaml:3:25: replay.redis_cluster_nodes[0]: \"http://:***@a\" is not a redis:// or rediss:// URL",
        ),
        (
            "replay:\n  store: redis\n  redis_url: \"redis://a\"\n  redis_password_file: /p\n  redis_password_env: P\n",
            "p.yaml:5:23: replay.redis_password_env: give redis_password_file or redis_password_env, not both",
        ),
        (
            "replay:\n  store: redis\n  redis_url: \"redis://a\"\n  redis_password_env: \"1-bad\"\n",
            "p.yaml:4:23: replay.redis_password_env: \"1-bad\" is not an environment variable name",
        ),
        (
            "replay:\n  store: redis\n  redis_url: \"redis://a\"\n  redis_client_cert_file: /c\n",
            "p.yaml:4:27: replay.redis_client_cert_file: redis_client_cert_file and redis_client_key_file go together",
        ),
        (
            // The silent per-process store of issue 20: Redis settings that the memory store ignores.
            "replay:\n  redis_url: \"redis://a\"\n",
            "p.yaml:2:14: replay.redis_url: redis_url is only used with store: redis (the store here is memory)",
        ),
        (
            "readiness:\n  on_timeout: serve\n",
            "p.yaml:2:15: readiness.on_timeout: unknown value \"serve\": expected one of not_ready | ready",
        ),
        (
            "readiness:\n  timeout_seconds: 0\n",
            "p.yaml:2:20: readiness.timeout_seconds: 0 is out of range 1..=86400",
        ),
    ] {
        assert_eq!(one_err(text), want, "{text}");
    }
    // Several at once.
    assert_eq!(
        errs("replay:\n  store: redis\n  redis_url: \"ftp://x\"\nreadiness: { wait_for_key_directory: maybe }\n").len(),
        2
    );
}

#[test]
fn readiness_defaults_and_settings() {
    assert_eq!(
        ok("mode: hybrid").file.readiness,
        ReadinessPolicy::default()
    );
    let r = ok("readiness:\n  wait_for_key_directory: false\n  wait_for_replay_store: false\n  timeout_seconds: 5\n  on_timeout: ready\n")
        .file
        .readiness;
    assert_eq!(
        r,
        ReadinessPolicy {
            wait_for_key_directory: false,
            wait_for_replay_store: false,
            timeout_seconds: 5,
            on_timeout: OnReadyTimeout::Ready,
        }
    );
}

//! Every error kind with its exact line:col, and several errors reported at once.

use super::super::*;
use super::{errs, one_err};

#[test]
fn type_errors_point_at_the_value() {
    let cases = [
        (
            "signature:\n  max_age_seconds: \"abc\"\n",
            "p.yaml:2:20: signature.max_age_seconds: expected an integer in 1..=604800, got string \"abc\"",
        ),
        (
            "signature:\n  max_age_seconds: 0\n",
            "p.yaml:2:20: signature.max_age_seconds: 0 is out of range 1..=604800",
        ),
        (
            "canary:\n  percent: 150\n",
            "p.yaml:2:12: canary.percent: 150 is out of range 0..=100",
        ),
        (
            "canary:\n  percent: \"5\"\n",
            "p.yaml:2:12: canary.percent: \"5\" is not an integer in 0..=100 (write it unquoted, in range)",
        ),
        (
            "signature:\n  max_body_bytes: 99999999999999999999999\n",
            "p.yaml:2:19: signature.max_body_bytes: \"99999999999999999999999\" is not an integer in 0..=1099511627776 (write it unquoted, in range)",
        ),
        (
            "canary:\n  percent: -1\n",
            "p.yaml:2:12: canary.percent: -1 is out of range 0..=100",
        ),
        (
            "trusted_proxies: [10.0.0.0/8, 10.0.0.0/40]\n",
            "p.yaml:1:31: trusted_proxies[1]: \"10.0.0.0/40\" is not an IP address or CIDR (e.g. 10.1.0.0/16)",
        ),
        (
            "listen: localhost:8080\n",
            "p.yaml:1:9: listen: \"localhost:8080\" is not an IP:PORT address (e.g. \"0.0.0.0:8080\" or \"[::]:8080\"; host names are not resolved here)",
        ),
        (
            "listen: 8080\n",
            "p.yaml:1:9: listen: expected a string, got integer 8080 (quote it to make it a string)",
        ),
        (
            "dry_run: yes\n",
            "p.yaml:1:10: dry_run: expected true or false, got \"yes\" (YAML 1.2 has only true and false)",
        ),
        (
            "upstream: \"ftp://x:1\"\n",
            "p.yaml:1:11: upstream: \"ftp://x:1\": unsupported scheme; expected \"host:port\", \"http://host:port\" or \"https://host:port\"",
        ),
        (
            "signature:\n  nonce: maybe\n",
            "p.yaml:2:10: signature.nonce: unknown value \"maybe\": expected one of required | optional | off",
        ),
        (
            "signature:\n  required_components: [\"@method\", \"@status\"]\n",
            "p.yaml:2:36: signature.required_components[1]: @status is a response component; a request signature cannot cover it",
        ),
        (
            "signature:\n  required_components: [Content-Type]\n",
            "p.yaml:2:25: signature.required_components[0]: field names in component identifiers are lowercase: write \"content-type\"",
        ),
        (
            "signature:\n  required_components: [\"@path\", content-type, \"@path\"]\n",
            "p.yaml:2:48: signature.required_components[2]: @path is listed twice",
        ),
        (
            "signature:\n  label: Sig1\n",
            "p.yaml:2:10: signature.label: \"Sig1\" is not a valid signature label (lowercase letters, digits, _ - . *; starting with a letter or *)",
        ),
        (
            "identity:\n  client_id_header: \"bad header\"\n",
            "p.yaml:2:21: identity.client_id_header: \"bad header\" is not a valid HTTP header name",
        ),
        (
            "canary:\n  sticky_on: [\"cookie:x\"]\n",
            "p.yaml:2:15: canary.sticky_on[0]: \"cookie:x\": expected \"header:NAME\" or \"ip\"",
        ),
        (
            "canary:\n  always_require: [\"ip:300.0.0.0/8\"]\n",
            "p.yaml:2:20: canary.always_require[0]: \"300.0.0.0/8\" is not an IP address or CIDR (e.g. 10.1.0.0/16)",
        ),
        (
            "key_directory:\n  url: \"ftp://x\"\n",
            "p.yaml:2:8: key_directory.url: \"ftp://x\" is not an http:// or https:// URL",
        ),
        (
            "key_directory:\n  url: \"http://x/k.jwks\"\n  refresh_seconds: 0\n",
            "p.yaml:3:20: key_directory.refresh_seconds: 0 is out of range 1..=86400",
        ),
        (
            "replay:\n  store: redis\n",
            "p.yaml:2:10: replay.redis_url: store: redis needs redis_url (redis://host:port/db), redis_cluster_nodes or redis_sentinels",
        ),
        (
            "replay:\n  store: memcached\n",
            "p.yaml:2:10: replay.store: unknown value \"memcached\": expected one of memory | redis",
        ),
        (
            "replay:\n  on_store_error: allw\n",
            "p.yaml:2:19: replay.on_store_error: unknown value \"allw\": expected one of reject | allow; did you mean `allow`?",
        ),
        (
            "routes:\n  - { path_prefix: api, mode: off }\n",
            "p.yaml:2:20: routes[0].path_prefix: path_prefix must start with `/`, got \"api\"",
        ),
        (
            "routes:\n  - { path_prefix: /a }\n",
            "p.yaml:2:5: routes[0]: missing `mode` (off | hybrid | required)",
        ),
        (
            "routes:\n  - { path_prefix: /a, mode: off, methods: [post] }\n",
            "p.yaml:2:45: routes[0].methods[0]: methods are case-sensitive: write \"POST\"",
        ),
        (
            "routes:\n  - { path_prefix: /a, mode: off, methods: [] }\n",
            "p.yaml:2:44: routes[0].methods: an empty methods list matches nothing; omit `methods` to match every method",
        ),
        (
            "routes: {a: 1}\n",
            "p.yaml:1:9: routes: expected a list, got a mapping",
        ),
        (
            "listen: \"127.0.0.1:9000\"\nadmin_listen: \"127.0.0.1:9000\"\n",
            "p.yaml:2:15: admin_listen: admin_listen and listen are the same address 127.0.0.1:9000",
        ),
        (
            "threads: 1.5\n",
            "p.yaml:1:10: threads: expected an integer in 0..=1024, got number 1.5",
        ),
        (
            "keys:\n  - key_id: k\n    public_key: \"abc\"\n",
            "p.yaml:3:17: keys[0].public_key: not a usable Ed25519 public key: ",
        ),
        (
            "- a\n- b\n",
            "p.yaml:1:1: (root): expected a mapping, got a list",
        ),
        ("mode: [off\n", "p.yaml:2:1: (root): YAML syntax error: "),
    ];
    for (text, want) in cases {
        let got = one_err(text);
        assert!(
            got.starts_with(want),
            "for {text:?}\n got: {got}\nwant: {want}"
        );
    }
}

#[test]
fn every_error_is_reported_at_once_in_position_order() {
    let text = "\
mode: false
dry_run: 1
signature:
  max_age_secs: 5
  nonce: sometimes
routes:
  - { path_prefix: /a, mode: hybird }
canary:
  percent: 101
trusted_proxies: [\"nope\"]
";
    let e = errs(text);
    let where_: Vec<&str> = e.iter().map(|l| l.split(": ").next().unwrap()).collect();
    assert_eq!(
        where_,
        [
            "p.yaml:1:7",
            "p.yaml:2:10",
            "p.yaml:4:3",
            "p.yaml:5:10",
            "p.yaml:7:30",
            "p.yaml:9:12",
            "p.yaml:10:19"
        ]
    );
    let all = parse(text, "p.yaml").unwrap_err().to_string();
    assert_eq!(all.lines().count(), 7);
    assert!(
        all.contains("routes[0].mode: unknown value \"hybird\""),
        "{all}"
    );
}

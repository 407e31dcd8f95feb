//! What `/status` shows of the listener's protocols: the `/status` fields `tls`, `http2` and
//! `upstream`, read from the policy snapshot in force when asked (a rotated certificate shows at
//! once). Builds nothing and reads no file.

use serde_json::json;

use crate::live::LivePolicy as Runtime;

/// `/status` `tls`, `http2` and `upstream`. `listener_tls`: the listener was started with TLS
/// (turning it on or off needs a restart, reported as `restart_required`).
pub fn status(runtime: &Runtime, listener_tls: bool) -> [(&'static str, serde_json::Value); 3] {
    let live = runtime.snapshot();
    let f = &live.policy.file;
    let files = &live.policy.tls_files;
    let path =
        |p: &Option<crate::policy::PemFile>| p.as_ref().map(|p| p.path.display().to_string());
    let tls = match &live.hop.tls {
        Some(t) => json!({
            "enabled": listener_tls,
            "cert_file": path(&files.cert),
            "key_file": path(&files.key),
            "client_ca_file": path(&files.client_ca),
            "client_auth": t.client_auth,
            "subject": t.subject,
            "not_after": t.not_after,
            "sha256": t.sha256,
            "restart_required": !listener_tls,
        }),
        None => json!({ "enabled": listener_tls, "restart_required": listener_tls }),
    };
    let h = f.http2;
    let http2 = json!({
        "enabled": h.enabled,
        "max_concurrent_streams": h.max_concurrent_streams,
        "max_header_list_bytes": h.max_header_list_bytes,
        "max_pending_resets": h.max_pending_resets,
    });
    let upstream = json!({
        "url": f.upstream.to_string(),
        "tls": f.upstream.tls,
        "server_name": f.upstream.tls.then(|| live.hop.peer.sni.clone()),
        "ca_file": path(&files.upstream_ca),
    });
    [("tls", tls), ("http2", http2), ("upstream", upstream)]
}

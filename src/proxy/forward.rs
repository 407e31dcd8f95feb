//! The one case Pingora cannot replay for us: a verified chunked body over 64 KiB (its retry
//! buffer was overrun, so `request_body_filter` is never called again — see body.rs). Here the
//! request is sent upstream by hand over Pingora's own connector and the response copied back.
//! Everything else goes through Pingora's normal proxy path.

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession as ClientSession;
use pingora::proxy::Session;
use pingora::upstreams::peer::Peer;

use super::ctx::ReqCtx;
use super::respond;
use crate::error::{Error, ErrorCode};

/// Hop-by-hop fields never forwarded (RFC 9110 §7.6.1), plus the body framing we replace.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub fn strip_hop_by_hop(req: &mut RequestHeader) {
    // Fields the client nominated in Connection are hop-by-hop too.
    let nominated: Vec<String> = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| {
            v.as_bytes()
                .split(|b| *b == b',')
                .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect();
    for n in nominated {
        req.remove_header(n.as_str());
    }
    for n in HOP_BY_HOP {
        req.remove_header(n);
    }
}

/// Send `up` + `body` to `peer`, stream the answer downstream. Errors are answered here as
/// 502/504 JSON (the caller returns `Ok(true)` either way).
pub async fn forward(
    connector: &Connector,
    peer: &pingora::prelude::HttpPeer,
    session: &mut Session,
    ctx: &mut ReqCtx,
    up: RequestHeader,
    body: Bytes,
) -> pingora::Result<bool> {
    let rid = ctx.request_id().to_string();
    let sent = std::time::Instant::now();
    let mut latency = None;
    let res = exchange(connector, peer, session, up, body, &rid, sent, &mut latency).await;
    ctx.set_upstream_latency(latency);
    match res {
        Ok(()) => Ok(true),
        Err(e) => {
            let code = super::ctx::classify(&e).unwrap_or(ErrorCode::UpstreamUnavailable);
            ctx.set_failure(code, e.to_string());
            if session.response_written().is_none() {
                let resp =
                    respond::error_response(&Error::new(code, e.to_string()), ctx.request_id())?;
                respond::send(session, resp, false).await?;
            } else {
                // Response already started: the only honest signal left is closing.
                session.set_keepalive(None);
            }
            Ok(true)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn exchange(
    connector: &Connector,
    peer: &pingora::prelude::HttpPeer,
    session: &mut Session,
    up: RequestHeader,
    body: Bytes,
    request_id: &str,
    sent: std::time::Instant,
    latency: &mut Option<std::time::Duration>,
) -> pingora::Result<()> {
    let (client, _reused) = connector.get_http_session(peer).await.map_err(|mut e| {
        e.as_up();
        e
    })?;
    let ClientSession::H1(mut h1) = client else {
        return Err(pingora::Error::explain(
            pingora::ErrorType::InternalError,
            "buffered forward supports HTTP/1 upstreams only",
        ));
    };
    let up_err = |mut e: Box<pingora::Error>| {
        e.as_up();
        e
    };
    h1.write_request_header(Box::new(up))
        .await
        .map_err(up_err)?;
    h1.write_body(&body).await.map_err(up_err)?;
    h1.finish_body().await.map_err(up_err)?;
    let mut resp = loop {
        let r = h1.read_resp_header_parts().await.map_err(up_err)?;
        if !r.status.is_informational() {
            break r;
        }
    };
    *latency = Some(sent.elapsed());
    resp.remove_header("connection");
    resp.remove_header("keep-alive");
    resp.insert_header(respond::REQUEST_ID, request_id)?;
    session.write_response_header(resp, false).await?;
    while let Some(chunk) = h1.read_body_bytes().await.map_err(up_err)? {
        session.write_response_body(Some(chunk), false).await?;
    }
    session.write_response_body(None, true).await?;
    h1.respect_keepalive();
    connector
        .release_http_session(ClientSession::H1(h1), peer, peer.idle_timeout())
        .await;
    Ok(())
}

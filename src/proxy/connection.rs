//! A client connection: admission (limits, PROXY protocol), the deadlines below hyper, hyper's
//! HTTP/1.1 or HTTP/2 server, and how the connection ends (counted, and logged when a request
//! never reached the handler).

use super::*;
use crate::config::{ListenerLimits, Trust};
use std::future::Future;

impl ProxyApp {
    /// Answers a connection over a limit and closes it (its first bytes, if any, unread).
    pub(super) async fn refuse(
        &self,
        mut stream: Stream,
        refusal: crate::admission::Refusal,
        client: Option<IpAddr>,
    ) {
        use tokio::io::AsyncWriteExt;
        connection_closed(&self.gateway, &self.listener, refusal.reason(), client);
        let answer = refusal.answer();
        let written = tokio::time::timeout(REFUSAL_WRITE, async {
            stream.write_all(&answer).await?;
            stream.shutdown().await
        });
        let _ = written.await;
    }
}

/// Counts a connection the gateway closed by itself and, when that refused a request the
/// handler never saw, writes its access log line (a write stall ends a request that has its
/// own line).
pub(crate) fn connection_closed(
    gateway: &Gateway,
    listener: &str,
    reason: &str,
    client: Option<IpAddr>,
) {
    gateway
        .metrics
        .connections_closed
        .with_label_values(&[listener, reason])
        .inc();
    let error = match reason {
        "max_connections" | "max_connections_per_ip" => GatewayError::TooManyConnections(""),
        "header_timeout" => GatewayError::HeaderTimeout,
        "proxy_protocol" => GatewayError::BadProxyProtocol,
        "malformed_head" => GatewayError::BadRequest(""),
        "header_too_large" => GatewayError::HeadTooLarge,
        "uri_too_long" => GatewayError::UriTooLong,
        _ => return,
    };
    if let Some(log) = gateway.access_log.load().as_ref() {
        let (status, code, _) = error.parts();
        let mut ts = [0; 24];
        log.write(&crate::access_log::Entry {
            ts: crate::access_log::timestamp_into(&mut ts),
            request_id: "",
            listener,
            route: None,
            method: "",
            path: "",
            status,
            duration_ms: 0.0,
            workspace: None,
            instance: None,
            upstream_status: None,
            bytes_sent: 0,
            webhook: None,
            client,
            error: Some(code),
        });
    }
}

/// How long a connection that has not sent a request yet is given to, once shutdown began.
const FIRST_REQUEST_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a refused connection is given to take its 503.
const REFUSAL_WRITE: std::time::Duration = std::time::Duration::from_secs(1);

#[async_trait]
impl ServerApp for ProxyApp {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let peer = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let snap = self.gateway.snapshot();
        let listener = snap.config.listener(&self.listener)?;
        let (limits, trust) = (listener.limits, listener.trust.clone());
        drop(snap);
        // Behind a balancer speaking the PROXY protocol, the client is the one its header names.
        let (peer, early) = match trust.proxy_protocol {
            true => self.proxy_header(&mut stream, &limits, peer).await?,
            false => (peer, Vec::new()),
        };
        let trusted = peer.is_some_and(|ip| trust.trusts(ip));
        // A trusted proxy carries many clients: only the listener's total applies to it.
        let counted = peer.filter(|_| !trusted);
        let admitted = self.admission.admit(
            counted,
            limits.max_connections,
            limits.max_connections_per_ip,
        );
        let _slot = match admitted {
            Ok(slot) => slot,
            Err(refusal) => {
                self.refuse(stream, refusal, peer).await;
                return None;
            }
        };
        let open = self
            .gateway
            .metrics
            .open_connections
            .with_label_values(&[&self.listener]);
        open.inc();
        let _open = scopeguard(move || open.dec());
        let h2 = stream.selected_alpn_proto() == Some(pingora::protocols::ALPN::H2);
        let (stream, conn) = self.connection(stream, early, limits, peer, trust, h2);
        match h2 {
            true => serve_h2(stream, conn, shutdown.clone()).await,
            false => serve_h1(stream, conn, shutdown.clone()).await,
        }
        None
    }
}

impl ProxyApp {
    /// Reads a PROXY protocol header within the head deadline: the client it names (the peer
    /// when it names none) and the bytes read after it. `None` closes the connection.
    async fn proxy_header(
        &self,
        stream: &mut Stream,
        limits: &ListenerLimits,
        peer: Option<IpAddr>,
    ) -> Option<(Option<IpAddr>, Vec<u8>)> {
        let header = proxy_protocol::read(stream);
        match tokio::time::timeout(limits.header_timeout, header).await {
            Ok(Ok((header, early))) => Some((header.client.map(|a| a.ip()).or(peer), early)),
            Ok(Err(reason)) => {
                tracing::debug!(%reason, "connection without a valid PROXY header");
                connection_closed(&self.gateway, &self.listener, "proxy_protocol", peer);
                None
            }
            Err(_) => {
                connection_closed(&self.gateway, &self.listener, "header_timeout", peer);
                None
            }
        }
    }

    /// The connection's state, and its stream wrapped in the deadlines below hyper.
    fn connection(
        self: &Arc<Self>,
        stream: Stream,
        early: Vec<u8>,
        limits: ListenerLimits,
        peer: Option<IpAddr>,
        trust: Trust,
        h2: bool,
    ) -> (TokioIo<framing::Guarded<Stream>>, Arc<Connection>) {
        let write_timeout = Arc::new(AtomicU64::new(
            crate::config::defaults::WRITE_TIMEOUT.as_millis() as u64,
        ));
        let (gateway, listener) = (self.gateway.clone(), self.listener.clone());
        let pace = framing::Pace {
            header_timeout: limits.header_timeout,
            write_timeout: write_timeout.clone(),
            expired: Box::new(move |reason| connection_closed(&gateway, &listener, reason, peer)),
        };
        let (stream, heads) = framing::Guarded::new(stream, early, pace, h2);
        let conn = Arc::new(Connection {
            app: self.clone(),
            limits,
            client: hygiene::client_value(peer),
            trusted: peer.is_some_and(|ip| trust.trusts(ip)),
            peer,
            trust,
            heads,
            write_timeout,
        });
        (TokioIo::new(stream), conn)
    }
}

/// hyper's service for a connection: every request goes to [`ProxyApp::handle`].
fn service(
    conn: Arc<Connection>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Answer>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Answer>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req| {
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(conn.app.handle(req, &conn).await) }
    })
}

async fn serve_h2(
    io: TokioIo<framing::Guarded<Stream>>,
    conn: Arc<Connection>,
    mut shutdown: ShutdownWatch,
) {
    let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .serve_connection(io, service(conn));
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => return,
        _ = shutdown.changed() => served.as_mut().graceful_shutdown(),
    }
    let _ = served.await;
}

async fn serve_h1(
    io: TokioIo<framing::Guarded<Stream>>,
    conn: Arc<Connection>,
    mut shutdown: ShutdownWatch,
) {
    let limits = conn.limits;
    let served = hyper::server::conn::http1::Builder::new()
        .timer(coarse_timer::CoarseTimer)
        // Runs from the end of one exchange to the next head's end: the idle keep-alive
        // limit (a head's own deadline, from its first byte, is kept by `Guarded`).
        .header_read_timeout(limits.idle_timeout)
        // hyper's read buffer grows to this (default ~400 KiB): it bounds a request head
        // and what one connection holds of a body being read.
        .max_buf_size(MAX_READ_BUF.max(limits.max_head_size * 2))
        .serve_connection(io, service(conn.clone()))
        .with_upgrades();
    tokio::pin!(served);
    tokio::select! {
        _ = served.as_mut() => return,
        _ = shutdown.changed() => {}
    }
    // A connection accepted as shutdown began (pingora broadcasts it before it stops
    // accepting) has its first request on the way: read it rather than close unanswered.
    if !conn.heads.any_handled()
        && tokio::time::timeout(FIRST_REQUEST_GRACE, served.as_mut())
            .await
            .is_ok()
    {
        return;
    }
    served.as_mut().graceful_shutdown();
    let _ = served.await;
}

/// Runs `f` when dropped.
pub(super) fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    Guard(Some(f))
}

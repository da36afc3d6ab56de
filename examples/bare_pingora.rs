//! Benchmark baseline (not part of fleetgate): pingora's HTTP proxy with no logic but
//! `X-Workspace-Id % 4` → 127.0.0.1:3001..3004, one thread. `bench/proxy-bench.sh` runs it as the
//! `pingora` target to separate pingora's own per-request cost from fleetgate's.
//! Usage: `bare_pingora [PORT]` (default 18092).

use async_trait::async_trait;
use pingora::prelude::*;
pub struct Bare;
#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        let ws: u64 = s
            .req_header()
            .headers
            .get("x-workspace-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let port = 3001 + (ws % 4) as u16;
        Ok(Box::new(HttpPeer::new(
            ("127.0.0.1", port),
            false,
            String::new(),
        )))
    }
}
fn main() {
    let conf = pingora::server::configuration::ServerConf {
        threads: 1,
        ..Default::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut svc = pingora_proxy::http_proxy_service(&server.configuration, Bare);
    let port = std::env::args().nth(1).unwrap_or_else(|| "18092".into());
    svc.add_tcp(&format!("127.0.0.1:{port}"));
    server.add_service(svc);
    server.run_forever();
}

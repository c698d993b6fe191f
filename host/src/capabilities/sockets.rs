//! `wasi:sockets`: the addresses a component may connect or bind to
//! (`sockets = ["127.0.0.1:6379"]`), checked by each instance's WASI
//! context; name lookup stays off. Without the key no socket opens. A
//! graph's members share one WASI context, so members that import
//! `wasi:sockets` must be granted the same addresses (`link::rules`).

use super::{Capability, GraphGrants, JobCapability, JobSetup, NothingToLink};
use anyhow::Result;
use std::net::SocketAddr;
use std::sync::Arc;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

/// Parses a `sockets` entry when the manifest is read.
pub fn parse_address(entry: &str) -> Result<SocketAddr, String> {
    entry.parse().map_err(|_| {
        format!(
            "`sockets` entries are IP addresses with ports such as `127.0.0.1:6379`, not `{entry}`"
        )
    })
}

/// Granted socket addresses.
pub struct Sockets;

#[async_trait::async_trait]
impl Capability for Sockets {
    fn name(&self) -> &'static str {
        "sockets"
    }

    async fn open(&self, _: &JobSetup<'_>) -> Result<Arc<dyn JobCapability>> {
        Ok(Arc::new(NothingToLink))
    }

    fn configure_instance(&self, grants: &GraphGrants, wasi: &mut WasiCtxBuilder) {
        if grants.sockets.is_empty() {
            return;
        }
        let allowed = grants.sockets.clone();
        wasi.socket_addr_check(move |address, use_| {
            // Granted addresses, plus the implicit bind to an ephemeral
            // port that every connect does.
            let implicit_bind = matches!(use_, SocketAddrUse::TcpBind | SocketAddrUse::UdpBind)
                && address.port() == 0
                && address.ip().is_unspecified();
            let ok = implicit_bind || allowed.contains(&address);
            Box::pin(async move { ok })
        });
        wasi.allow_tcp(true)
            .allow_udp(true)
            .allow_ip_name_lookup(false);
    }
}

//! Native TLS for the WebSocket front (wss://) and the raw TCP front, with
//! rustls: the handshake under a timeout, ALPN http/1.1 for WebSocket, and
//! one certificate for both, reloaded from its files on SIGHUP. A reload
//! changes what new handshakes get; connections already up keep theirs and
//! are not dropped.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use rustls::crypto::ring::{default_provider, sign::any_supported_type};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::admission::Entry;
use crate::metrics::Count;
use crate::session::Host;
use crate::{Config, Gateway};

/// A client gets this long to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate and key every new handshake gets, swapped on reload.
pub struct Certificate {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate").field("cert", &self.cert).field("key", &self.key).finish()
    }
}

impl Certificate {
    /// Loads the PEM files; an error names the file and what is wrong.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Certificate> {
        let loaded = certified_key(cert, key)?;
        Ok(Certificate { cert: cert.to_owned(), key: key.to_owned(), current: RwLock::new(Arc::new(loaded)) })
    }

    /// Reads the files again. On an error the certificate in use stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let loaded = certified_key(&self.cert, &self.key)?;
        *self.current.write().unwrap() = Arc::new(loaded);
        Ok(())
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap().clone())
    }
}

fn certified_key(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("--tls-cert {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "--tls-cert {}: no certificate in it", cert.display());
    let key_der = PrivateKeyDer::from_pem_file(key).with_context(|| format!("--tls-key {}", key.display()))?;
    let signer = any_supported_type(&key_der).with_context(|| format!("--tls-key {}", key.display()))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().context("--tls-cert and --tls-key do not belong together")?;
    Ok(certified)
}

/// What a TLS listener serves once the handshake is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    /// wss://, and plain HTTP routes over https.
    WebSocket,
    /// fooking's length-framed clients.
    Tcp,
}

/// The acceptor for `certificate`: TLS 1.2 and 1.3; ALPN http/1.1 for
/// WebSocket, none for raw TCP (a client that offers some still connects).
fn acceptor(certificate: Arc<Certificate>, front: Front) -> anyhow::Result<TlsAcceptor> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    if front == Front::WebSocket {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A TLS listener, bound, and what it serves.
pub struct Listener {
    pub socket: TcpListener,
    pub acceptor: TlsAcceptor,
    pub front: Front,
}

/// Binds the TLS listeners `config` asks for (`--listen-tls`,
/// `--listen-tcp-tls`), with the certificate they share; none without.
pub async fn bind(config: &Config) -> anyhow::Result<(Option<Arc<Certificate>>, Vec<Listener>)> {
    let wanted = [(config.listen_tls, Front::WebSocket), (config.listen_tcp_tls, Front::Tcp)];
    let wanted: Vec<_> = wanted.into_iter().filter_map(|(addr, front)| Some((addr?, front))).collect();
    if wanted.is_empty() {
        return Ok((None, Vec::new()));
    }
    let (Some(cert), Some(key)) = (config.tls_cert.as_deref(), config.tls_key.as_deref()) else {
        anyhow::bail!("a TLS listener needs --tls-cert and --tls-key");
    };
    let certificate = Arc::new(Certificate::load(cert, key)?);
    let mut listeners = Vec::new();
    for (addr, front) in wanted {
        let socket = TcpListener::bind(addr).await.with_context(|| format!("bind {addr}"))?;
        listeners.push(Listener { socket, acceptor: acceptor(certificate.clone(), front)?, front });
    }
    Ok((Some(certificate), listeners))
}

/// One TLS connection: the handshake, then the same front as over plain TCP.
pub async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    entry: Entry,
    acceptor: TlsAcceptor,
    front: Front,
    slot: runtime::Slot,
    gateway: Arc<Gateway>,
) {
    let failed = |why: String| {
        gateway.metrics().count(Count::TlsHandshakeFailures);
        tracing::debug!(%remote, why, "TLS handshake failed");
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) if front == Front::WebSocket => {
            super::http::serve_connection(tls, remote, entry, slot, gateway).await
        }
        Ok(Ok(tls)) => super::tcp::serve_connection(tls, remote, entry, gateway),
        Ok(Err(err)) => failed(err.to_string()),
        Err(_) => failed(format!("no handshake within {HANDSHAKE_TIMEOUT:?}")),
    }
}

/// Reloads the certificate on every SIGHUP, logging and counting each try.
pub async fn reload_on_hangup(certificate: Arc<Certificate>, gateway: Arc<Gateway>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return tracing::warn!("cannot listen for SIGHUP: the TLS certificate will not reload");
    };
    while hangups.recv().await.is_some() {
        match certificate.reload() {
            Ok(()) => {
                gateway.metrics().count(Count::TlsReloads);
                tracing::info!(cert = %certificate.cert.display(), "TLS certificate reloaded");
            }
            Err(err) => {
                gateway.metrics().count(Count::TlsReloadFailures);
                tracing::error!(err = format!("{err:#}"), "TLS certificate not reloaded; the one in use stays");
            }
        }
    }
}

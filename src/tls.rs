//! TLS termination: certificates from a directory, chosen per handshake by SNI, replaced live.
//!
//! A listener's `tls.dir` holds pairs `NAME.crt` (PEM chain, leaf first) + `NAME.key` (PEM key:
//! PKCS#8, PKCS#1 or SEC1). Files with other extensions, and hidden files, are ignored. Each pair
//! answers for the DNS names in its leaf certificate's subjectAltName. The server name a client
//! sends picks, in order: a pair with exactly that name, a pair with the wildcard `*.parent`, the
//! pair named `default`, else the first pair by file name (also for clients sending no name, e.g.
//! when they connect by IP address).
//!
//! Data plane reads, control plane writes: rustls asks [`SniResolver`] on every handshake, which
//! reads one immutable [`CertTable`] from an `ArcSwap`. [`CertWatcher`] reads the directory every
//! [`WATCH_INTERVAL`]; on a change it loads the whole directory aside and swaps it in only if every
//! pair loads. Otherwise it logs the file at fault and the old certificates keep being served, so
//! a half-copied pair never reaches a client. Open connections keep the certificate they began with.

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{
    CertificateDer, ClientHello, CryptoProvider, PrivateKeyDer, ResolvesServerCert,
};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often a certificate directory is read for changes.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// How long a changed directory must stay the same before it is loaded (a pair being copied in).
pub const SETTLE: Duration = Duration::from_millis(200);

/// Why a certificate directory could not be loaded; each names the directory or the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate directory {}: {error}", dir.display())]
    Dir { dir: PathBuf, error: std::io::Error },
    #[error("no certificate pairs (NAME.crt + NAME.key) in {}", dir.display())]
    Empty { dir: PathBuf },
    #[error("{}: {message}", file.display())]
    File { file: PathBuf, message: String },
    #[error("no TLS crypto provider is installed")]
    NoProvider,
}

fn file_error(file: &Path, message: impl Into<String>) -> TlsError {
    TlsError::File {
        file: file.to_path_buf(),
        message: message.into(),
    }
}

/// One loaded directory: every pair, indexed by the names it answers for.
#[derive(Debug)]
pub struct CertTable {
    /// Lower-case DNS names (`api.example.com`, `*.example.com`) from the leaves' subjectAltName.
    by_name: HashMap<String, Arc<CertifiedKey>>,
    /// The pair named `default`, else the first by file name.
    fallback: Arc<CertifiedKey>,
    /// `(pair name, DNS names)` in file-name order, for logs.
    pairs: Vec<(String, Vec<String>)>,
}

impl CertTable {
    /// The certificate for a handshake's server name (see the module doc for the order).
    pub fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        server_name
            .and_then(|name| lookup(&self.by_name, name))
            .unwrap_or(&self.fallback)
    }

    /// The pairs loaded, as `name [dns names]` for logs.
    pub fn describe(&self) -> String {
        let pairs: Vec<String> = self
            .pairs
            .iter()
            .map(|(name, dns)| format!("{name} [{}]", dns.join(", ")))
            .collect();
        pairs.join("; ")
    }
}

/// Exact name, then the wildcard for its parent domain (`*.example.com` covers `a.example.com`,
/// not `a.b.example.com` nor `example.com`).
fn lookup<'a, T>(by_name: &'a HashMap<String, T>, name: &str) -> Option<&'a T> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    by_name.get(&name).or_else(|| {
        let (_, parent) = name.split_once('.')?;
        by_name.get(&format!("*.{parent}"))
    })
}

/// rustls's certificate hook for one listener: the current [`CertTable`].
#[derive(Debug)]
pub struct SniResolver {
    table: ArcSwap<CertTable>,
}

impl SniResolver {
    pub fn new(table: CertTable) -> Self {
        Self {
            table: ArcSwap::from_pointee(table),
        }
    }

    /// Serves `table` from the next handshake on.
    pub fn replace(&self, table: CertTable) {
        self.table.store(Arc::new(table));
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.table.load().pick(hello.server_name()).clone())
    }
}

/// pingora's settings for a TLS listener. With `h2`, ALPN offers `h2` then `http/1.1`; without,
/// no ALPN is negotiated and the connection is HTTP/1.1 (what the hub's listener needs).
///
/// `TlsSettings::build` panics on settings it cannot use; with a resolver set it reads no files
/// and builds infallibly, so everything that can fail happened in [`load_dir`].
pub fn tls_settings(resolver: Arc<SniResolver>, h2: bool) -> pingora::Result<TlsSettings> {
    let mut settings = TlsSettings::intermediate("", "")?;
    settings.set_cert_resolver(resolver);
    if h2 {
        settings.enable_h2();
    }
    Ok(settings)
}

/// Loads every pair in `dir`; fails on the first one that does not load.
pub fn load_dir(dir: &Path) -> Result<CertTable, TlsError> {
    pingora::tls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default().ok_or(TlsError::NoProvider)?;
    let names = pair_names(dir)?;
    let mut by_name = HashMap::new();
    let (mut fallback, mut pairs) = (None, Vec::new());
    for name in names {
        let (key, dns) = load_pair(dir, &name, provider)?;
        let key = Arc::new(key);
        for dns_name in &dns {
            by_name
                .entry(dns_name.clone())
                .or_insert_with(|| key.clone());
        }
        if fallback.is_none() || name == "default" {
            fallback = Some(key);
        }
        pairs.push((name, dns));
    }
    let fallback = fallback.ok_or_else(|| TlsError::Empty {
        dir: dir.to_path_buf(),
    })?;
    Ok(CertTable {
        by_name,
        fallback,
        pairs,
    })
}

/// The `.crt`/`.key` files in `dir` (hidden files skipped), sorted.
fn pair_files(dir: &Path) -> Result<BTreeSet<String>, TlsError> {
    let entries = std::fs::read_dir(dir).map_err(|error| TlsError::Dir {
        dir: dir.to_path_buf(),
        error,
    })?;
    Ok(entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .filter(|name| name.ends_with(".crt") || name.ends_with(".key"))
        .collect())
}

/// The pair names in `dir`, sorted; a `.crt` without its `.key` (or the reverse) is an error.
fn pair_names(dir: &Path) -> Result<Vec<String>, TlsError> {
    let files = pair_files(dir)?;
    let mut names = Vec::new();
    for file in &files {
        let (stem, other) = match file.strip_suffix(".crt") {
            Some(stem) => (stem, "key"),
            None => (file.strip_suffix(".key").unwrap_or(file), "crt"),
        };
        let other = format!("{stem}.{other}");
        if !files.contains(&other) {
            return Err(file_error(
                &dir.join(file),
                format!("{other} is missing next to it"),
            ));
        }
        if file.ends_with(".crt") {
            names.push(stem.to_string());
        }
    }
    Ok(names)
}

/// `NAME.crt` + `NAME.key` as rustls's key, with the leaf's DNS names.
fn load_pair(
    dir: &Path,
    name: &str,
    provider: &CryptoProvider,
) -> Result<(CertifiedKey, Vec<String>), TlsError> {
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let chain: Vec<CertificateDer<'static>> = pem_blocks(&crt)?
        .into_iter()
        .filter(|(label, _)| label == "CERTIFICATE")
        .map(|(_, der)| CertificateDer::from(der))
        .collect();
    let leaf = chain
        .first()
        .ok_or_else(|| file_error(&crt, "no PEM certificate in it"))?;
    let dns = dns_names(leaf).map_err(|message| file_error(&crt, message))?;
    let key_der = pem_blocks(&key)?
        .into_iter()
        .find(|(label, _)| label.ends_with("PRIVATE KEY"))
        .ok_or_else(|| file_error(&key, "no PEM private key in it"))?;
    if key_der.0.starts_with("ENCRYPTED") {
        return Err(file_error(&key, "encrypted private keys are not supported"));
    }
    let key_der = PrivateKeyDer::try_from(key_der.1)
        .map_err(|e| file_error(&key, format!("not a usable private key: {e}")))?;
    let certified = CertifiedKey::from_der(chain, key_der, provider).map_err(|e| {
        file_error(
            &key,
            format!("does not go with {name}.crt or is not usable: {e}"),
        )
    })?;
    Ok((certified, dns))
}

/// Every PEM block in a file as `(label, DER)`.
fn pem_blocks(file: &Path) -> Result<Vec<(String, Vec<u8>)>, TlsError> {
    let bytes = std::fs::read(file).map_err(|e| file_error(file, format!("cannot read: {e}")))?;
    x509_parser::pem::Pem::iter_from_buffer(&bytes)
        .map(|block| {
            block
                .map(|pem| (pem.label, pem.contents))
                .map_err(|e| file_error(file, format!("not valid PEM: {e}")))
        })
        .collect()
}

/// The lower-case DNS names of a leaf certificate's subjectAltName (may be empty).
fn dns_names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("the first certificate is not valid X.509: {e}"))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("the first certificate's subjectAltName is invalid: {e}"))?;
    Ok(san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => {
                        Some(dns.to_ascii_lowercase())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// A digest of the pair files' names and contents (`None` while the directory cannot be read).
/// Contents rather than sizes and mtimes: a renewed certificate often has the very same size, and
/// a copy can keep the old mtime.
fn fingerprint(dir: &Path) -> Option<[u8; 32]> {
    let mut digest = Sha256::new();
    for name in pair_files(dir).ok()? {
        let bytes = std::fs::read(dir.join(&name)).unwrap_or_default();
        digest.update((name.len() as u64).to_le_bytes());
        digest.update(name.as_bytes());
        digest.update((bytes.len() as u64).to_le_bytes());
        digest.update(&bytes);
    }
    Some(digest.finalize().into())
}

/// Keeps one listener's [`SniResolver`] in step with its directory.
pub struct CertWatcher {
    listener: String,
    dir: PathBuf,
    resolver: Arc<SniResolver>,
    /// The directory as last loaded or tried.
    loaded: Option<[u8; 32]>,
}

/// Loads `dir` for `listener`: the resolver its TLS settings use and the watcher that keeps it
/// current (to run as a background service).
pub fn watch(listener: &str, dir: &Path) -> Result<(Arc<SniResolver>, CertWatcher), TlsError> {
    // Read before loading: a change in between is then seen (and loaded) by the first tick.
    let loaded = fingerprint(dir);
    let table = load_dir(dir)?;
    tracing::info!(listener, dir = %dir.display(), certificates = %table.describe(), "TLS certificates loaded");
    let resolver = Arc::new(SniResolver::new(table));
    let watcher = CertWatcher {
        listener: listener.to_string(),
        dir: dir.to_path_buf(),
        resolver: resolver.clone(),
        loaded,
    };
    Ok((resolver, watcher))
}

impl CertWatcher {
    /// Waits until two reads [`SETTLE`] apart agree; returns the settled fingerprint.
    async fn settled(&self, mut seen: Option<[u8; 32]>) -> Option<[u8; 32]> {
        loop {
            tokio::time::sleep(SETTLE).await;
            let now = fingerprint(&self.dir);
            if now == seen {
                return now;
            }
            seen = now;
        }
    }

    fn reload(&self) {
        let (listener, dir) = (self.listener.as_str(), self.dir.display());
        match load_dir(&self.dir) {
            Ok(table) => {
                let certificates = table.describe();
                self.resolver.replace(table);
                tracing::info!(listener, %dir, %certificates, "TLS certificates reloaded");
            }
            Err(e) => tracing::error!(
                listener,
                %dir,
                error = %e,
                "TLS certificates not reloaded; still serving the previous ones"
            ),
        }
    }
}

#[async_trait]
impl BackgroundService for CertWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tried = self.loaded;
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tick.tick() => {}
            }
            let now = fingerprint(&self.dir);
            if now == tried {
                continue;
            }
            // Each state is tried once: a broken pair is reported once, not every interval.
            tried = self.settled(now).await;
            self.reload();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::lookup;
    use std::collections::HashMap;

    fn table() -> HashMap<String, &'static str> {
        [("a.example.com", "exact"), ("*.example.com", "wildcard")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    #[test]
    fn an_exact_name_wins_over_the_wildcard() {
        assert_eq!(lookup(&table(), "a.example.com"), Some(&"exact"));
        assert_eq!(lookup(&table(), "A.Example.com."), Some(&"exact"));
    }

    #[test]
    fn a_wildcard_covers_one_label_only() {
        assert_eq!(lookup(&table(), "b.example.com"), Some(&"wildcard"));
        assert_eq!(lookup(&table(), "x.b.example.com"), None);
        assert_eq!(lookup(&table(), "example.com"), None);
        assert_eq!(lookup(&table(), "other.test"), None);
    }
}

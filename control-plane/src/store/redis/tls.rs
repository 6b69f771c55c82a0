//! TLS to Redis: a `rediss://` URL turns it on (rustls on ring, trusting the system's
//! certificate store); [`RedisTls`] adds a private CA to trust instead and, for mutual
//! TLS, the certificate the control plane presents.

use std::fmt;
use std::path::Path;

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::{
    Client, ClientTlsConfig, ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisError,
    TlsCertificates,
};

use crate::store::error::StoreError;

/// What a `rediss://` connection trusts and presents beyond the defaults, as PEM read
/// once at start-up. The default (nothing set) leaves the URL to decide: plain for
/// `redis://`, TLS verified against the system's store for `rediss://`.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// CA certificates to verify the server with, instead of the system's store.
    ca_cert: Option<Vec<u8>>,
    /// The client certificate chain and its private key, for servers that demand one.
    client: Option<ClientTlsConfig>,
}

impl RedisTls {
    /// Reads the PEM files: `ca_cert` to trust, `client` (certificate chain, key) to
    /// present. An error names the file, never its contents.
    pub fn from_files(
        ca_cert: Option<&Path>,
        client: Option<(&Path, &Path)>,
    ) -> std::io::Result<RedisTls> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|error| {
                std::io::Error::new(error.kind(), format!("{}: {error}", path.display()))
            })
        };
        Ok(RedisTls {
            ca_cert: ca_cert.map(read).transpose()?,
            client: match client {
                Some((cert, key)) => Some(ClientTlsConfig {
                    client_cert: read(cert)?,
                    client_key: read(key)?,
                }),
                None => None,
            },
        })
    }

    /// Whether anything beyond the defaults is set (and so `rediss://` is required).
    fn is_set(&self) -> bool {
        self.ca_cert.is_some() || self.client.is_some()
    }

    fn certificates(&self) -> TlsCertificates {
        TlsCertificates {
            client_tls: self.client.clone(),
            root_cert: self.ca_cert.clone(),
        }
    }
}

impl fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is a secret; the certificates are not, but say no more than whether set.
        f.debug_struct("RedisTls")
            .field("ca_cert", &self.ca_cert.is_some())
            .field("client_cert", &self.client.is_some())
            .finish()
    }
}

/// A client for one Redis at `url` with `tls`.
pub(super) fn client(url: &str, tls: &RedisTls) -> Result<Client, StoreError> {
    install_crypto_provider();
    let client = if tls.is_set() {
        // Refuses a URL that is not `rediss://`: a CA for a plain connection is a mistake.
        Client::build_with_tls(url, tls.certificates())
    } else {
        Client::open(url)
    };
    client.map_err(StoreError::Command)
}

/// A cluster client builder for `nodes` with `tls`. The nodes must agree on TLS: the
/// client takes its TLS mode from the first one alone.
pub(super) fn cluster_builder(
    nodes: &[String],
    tls: &RedisTls,
) -> Result<ClusterClientBuilder, StoreError> {
    install_crypto_provider();
    let mut secure = Vec::with_capacity(nodes.len());
    for node in nodes {
        let info = node.as_str().into_connection_info()?;
        secure.push(matches!(info.addr(), ConnectionAddr::TcpTls { .. }));
    }
    if secure.iter().any(|s| *s) && !secure.iter().all(|s| *s) {
        return Err(invalid(
            "Redis Cluster nodes mix rediss:// and redis:// URLs",
        ));
    }
    let builder = ClusterClient::builder(nodes.iter().map(String::as_str));
    if !tls.is_set() {
        return Ok(builder);
    }
    if !secure.first().copied().unwrap_or(false) {
        return Err(invalid("TLS settings for Redis need rediss:// URLs"));
    }
    Ok(builder.certs(tls.certificates()))
}

fn invalid(message: &'static str) -> StoreError {
    StoreError::Command(RedisError::from((ErrorKind::InvalidClientConfig, message)))
}

/// The redis crate asks rustls for the process's default crypto provider: make it ring
/// (already built for sqlx) whatever else the dependency tree enables. Idempotent.
fn install_crypto_provider() {
    // Err only when a provider is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA file without certificates: set, and valid PEM.
    fn with_ca() -> RedisTls {
        RedisTls {
            ca_cert: Some(Vec::new()),
            client: None,
        }
    }

    fn error_text<T>(result: Result<T, StoreError>) -> String {
        match result {
            Ok(_) => String::new(),
            Err(StoreError::Command(error)) => error.to_string(),
            Err(other) => other.to_string(),
        }
    }

    #[test]
    fn tls_settings_for_a_plain_url_are_refused() {
        let single = error_text(client("redis://127.0.0.1:6379/", &with_ca()));
        assert!(single.contains("rediss://"), "{single}");
        let nodes = ["redis://127.0.0.1:7000/".to_string()];
        let cluster = error_text(cluster_builder(&nodes, &with_ca()));
        assert!(cluster.contains("rediss://"), "{cluster}");
    }

    #[test]
    fn cluster_nodes_that_mix_tls_and_plain_are_refused() {
        let nodes = [
            "redis://127.0.0.1:7000/".to_string(),
            "rediss://127.0.0.1:7001/".to_string(),
        ];
        assert!(cluster_builder(&nodes, &RedisTls::default()).is_err());
    }

    #[test]
    fn a_rediss_url_alone_needs_no_settings() {
        assert!(client("rediss://127.0.0.1:6379/", &RedisTls::default()).is_ok());
        let nodes = ["rediss://127.0.0.1:7000/".to_string()];
        assert!(cluster_builder(&nodes, &RedisTls::default()).is_ok());
    }

    #[test]
    fn debug_output_shows_no_pem() {
        let tls = RedisTls {
            ca_cert: Some(b"CA-PEM".to_vec()),
            client: Some(ClientTlsConfig {
                client_cert: b"CERT-PEM".to_vec(),
                client_key: b"KEY-PEM".to_vec(),
            }),
        };
        let text = format!("{tls:?}");
        assert!(!text.contains("PEM"), "{text}");
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let error = RedisTls::from_files(Some(Path::new("/nonexistent/ca.pem")), None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}

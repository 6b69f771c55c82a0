//! A throwaway certificate authority per test: a CA, a server certificate for
//! `127.0.0.1` and `localhost` and a client certificate it signed, as PEM files in a
//! directory, for Redis and PostgreSQL with TLS on. Made with `rcgen` on each run, so no
//! key is ever checked in and none outlives the test's temporary directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The PEM files of one throwaway PKI.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate: what a client must trust.
    pub ca_cert: PathBuf,
    /// The server's certificate (SANs `127.0.0.1`, `localhost`), signed by the CA. Good
    /// for client authentication too: Redis Cluster nodes present it to each other on
    /// the TLS cluster bus.
    pub server_cert: PathBuf,
    /// The server's private key (PKCS#8).
    pub server_key: PathBuf,
    /// A client certificate signed by the CA, for mutual TLS.
    pub client_cert: PathBuf,
    /// The client's private key (PKCS#8).
    pub client_key: PathBuf,
}

impl Pki {
    /// Generates a CA named `name` and the certificates it signs, into `dir/name/`.
    /// Two calls with different names give CAs that do not trust each other's
    /// certificates.
    pub fn generate(dir: &Path, name: &str) -> Result<Pki> {
        let home = dir.join(name);
        std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;

        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("Tollgate test CA {name}"));
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);

        let leaf =
            |common_name: &str, usage: &[ExtendedKeyUsagePurpose]| -> Result<(String, String)> {
                let mut params =
                    CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
                params
                    .distinguished_name
                    .push(DnType::CommonName, common_name);
                params.extended_key_usages = usage.to_vec();
                params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                let key = KeyPair::generate()?;
                let cert = params.signed_by(&key, &issuer)?;
                Ok((cert.pem(), key.serialize_pem()))
            };
        let (server_cert, server_key) = leaf(
            "127.0.0.1",
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )?;
        let (client_cert, client_key) = leaf(
            "tollgate-control-plane",
            &[ExtendedKeyUsagePurpose::ClientAuth],
        )?;

        let write = |file: &str, pem: &str| -> Result<PathBuf> {
            let path = home.join(file);
            std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };
        Ok(Pki {
            ca_cert: write("ca.pem", &ca_cert.pem())?,
            server_cert: write("server.pem", &server_cert)?,
            server_key: write("server-key.pem", &server_key)?,
            client_cert: write("client.pem", &client_cert)?,
            client_key: write("client-key.pem", &client_key)?,
        })
    }
}

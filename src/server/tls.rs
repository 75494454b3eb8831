//! TLS for a cell's server: the `transport` axis (`plaintext`, `tls`), the `[server.tls]`
//! options, and the throwaway certificates. Each TLS cell gets its own CA, a server certificate
//! for the names in `[server.tls] hosts`, a client certificate, and a second CA that signed
//! nothing (for "wrong CA" settings), generated with rcgen into a private temp folder (0700, keys
//! 0600) that is removed with the cell. The harness trusts the cell's CA through rustls; the app
//! gets the file paths through `{ca_cert}`, `{client_cert}`, `{client_key}`, `{other_ca_cert}`.
//!
//! Whether a server binary can serve TLS is probed (`supports_tls`), not assumed from its version:
//! redis and valkey builds differ (`BUILD_TLS`), and the catalog mixes builds.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use super::provision::ProvisionedServer;

/// How the harness and the app reach a cell's server.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Plain TCP (the default).
    #[default]
    Plaintext,
    /// TLS only: the server listens on `tls-port`, its plaintext port is off; URLs are
    /// `rediss://`.
    Tls,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Plaintext => "plaintext",
            Transport::Tls => "tls",
        }
    }

    pub fn is_plaintext(&self) -> bool {
        *self == Transport::Plaintext
    }
}

impl std::str::FromStr for Transport {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "plaintext" => Ok(Transport::Plaintext),
            "tls" => Ok(Transport::Tls),
            other => Err(format!(
                "unknown transport `{other}`: expected plaintext or tls"
            )),
        }
    }
}

/// `[server.tls]`: how the TLS cells' server is set up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TlsOptions {
    /// `tls-auth-clients yes`: clients must present a certificate signed by the cell's CA
    /// (`{client_cert}`, `{client_key}`). Off by default, as on most managed services.
    pub auth_clients: bool,
    /// Names the server certificate is issued for. The default (`127.0.0.1`, `localhost`) is what
    /// clients connect to; a name like `redis.internal` makes hostname verification fail the way
    /// it does when a certificate was issued for the service name and the app connects by IP.
    pub hosts: Vec<String>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            auth_clients: false,
            hosts: vec!["127.0.0.1".into(), "localhost".into()],
        }
    }
}

impl TlsOptions {
    pub fn is_default(&self) -> bool {
        *self == TlsOptions::default()
    }
}

/// A cell's certificates: the files (in a private folder removed on drop) and what the harness
/// needs to trust the server and, with `auth_clients`, to present its client certificate.
pub struct TlsMaterial {
    dir: tempfile::TempDir,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    client_cert_der: rustls::pki_types::CertificateDer<'static>,
    client_key_der: Vec<u8>,
    /// What the harness verifies the certificate against: the first of `[server.tls] hosts`.
    server_name: rustls::pki_types::ServerName<'static>,
    pub auth_clients: bool,
}

/// The certificate and key files of a cell, by placeholder name.
pub const FILE_PLACEHOLDERS: [(&str, &str); 4] = [
    ("{ca_cert}", "ca.crt"),
    ("{client_cert}", "client.crt"),
    ("{client_key}", "client.key"),
    ("{other_ca_cert}", "other-ca.crt"),
];

impl TlsMaterial {
    /// A fresh CA, a server certificate for `opts.hosts`, a client certificate, and an unrelated
    /// CA, written into a new private temp folder.
    pub fn generate(opts: &TlsOptions) -> std::result::Result<Arc<TlsMaterial>, String> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let bad = |e: rcgen::Error| format!("generating TLS certificates: {e}");
        let first = opts
            .hosts
            .first()
            .ok_or("[server.tls] hosts needs at least one name")?;
        let server_name = rustls::pki_types::ServerName::try_from(first.clone())
            .map_err(|e| format!("[server.tls] hosts: `{first}` is not a host name: {e}"))?;
        let ca_params_for = |name: &str| -> std::result::Result<CertificateParams, rcgen::Error> {
            let mut p = CertificateParams::new(Vec::<String>::new())?;
            p.distinguished_name.push(
                DnType::CommonName,
                format!("cachegate throwaway CA ({name})"),
            );
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            Ok(p)
        };
        let ca_key = KeyPair::generate().map_err(bad)?;
        let ca_params = ca_params_for("cell").map_err(bad)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(bad)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let leaf = |sans: Vec<String>,
                    cn: &str,
                    usage: ExtendedKeyUsagePurpose|
         -> std::result::Result<(rcgen::Certificate, KeyPair), rcgen::Error> {
            let key = KeyPair::generate()?;
            let mut p = CertificateParams::new(sans)?;
            p.distinguished_name.push(DnType::CommonName, cn);
            p.extended_key_usages = vec![usage];
            Ok((p.signed_by(&key, &issuer)?, key))
        };
        let (server_cert, server_key) = leaf(
            opts.hosts.clone(),
            opts.hosts
                .first()
                .map_or("cachegate server", |h| h.as_str()),
            ExtendedKeyUsagePurpose::ServerAuth,
        )
        .map_err(bad)?;
        let (client_cert, client_key) = leaf(
            vec![],
            "cachegate client",
            ExtendedKeyUsagePurpose::ClientAuth,
        )
        .map_err(bad)?;
        let other_key = KeyPair::generate().map_err(bad)?;
        let other_ca = ca_params_for("unrelated")
            .and_then(|p| p.self_signed(&other_key))
            .map_err(bad)?;

        let dir = crate::scratch::temp_dir("tls")
            .map_err(|e| format!("creating the TLS certificates' temp dir: {e}"))?;
        for (name, text) in [
            ("ca.crt", ca_cert.pem()),
            ("server.crt", server_cert.pem()),
            ("server.key", server_key.serialize_pem()),
            ("client.crt", client_cert.pem()),
            ("client.key", client_key.serialize_pem()),
            ("other-ca.crt", other_ca.pem()),
        ] {
            // 0600 for all: the keys must be, and the certificates gain nothing from more.
            crate::scratch::write_private(&dir.path().join(name), &text)
                .map_err(|e| format!("writing {name}: {e}"))?;
        }
        Ok(Arc::new(TlsMaterial {
            dir,
            ca_der: ca_cert.der().clone(),
            client_cert_der: client_cert.der().clone(),
            client_key_der: client_key.serialize_der(),
            server_name,
            auth_clients: opts.auth_clients,
        }))
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// The server's config lines for TLS on `port`, plaintext off.
    pub fn server_config_lines(&self, port: u16) -> Vec<String> {
        let quoted = |f: &str| format!("\"{}\"", self.path(f).display());
        vec![
            "port 0".to_string(),
            format!("tls-port {port}"),
            format!("tls-cert-file {}", quoted("server.crt")),
            format!("tls-key-file {}", quoted("server.key")),
            format!("tls-ca-cert-file {}", quoted("ca.crt")),
            format!(
                "tls-auth-clients {}",
                if self.auth_clients { "yes" } else { "no" }
            ),
        ]
    }

    /// The harness's rustls client config: trusts only the cell's CA, presents the client
    /// certificate (the server asks for it only with `auth_clients`).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.ca_der.clone())
            .expect("the generated CA is a valid certificate");
        // ring, not aws-lc-rs (rustls's default, which needs cmake and a longer build). Its
        // deprecation is about post-quantum key exchange, which no server here offers.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots);
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(self.client_key_der.clone().into());
        Arc::new(
            builder
                .with_client_auth_cert(vec![self.client_cert_der.clone()], key)
                .expect("the generated client key matches its certificate"),
        )
    }

    /// The name the harness verifies the server certificate against: the first of
    /// `[server.tls] hosts` (by default 127.0.0.1, the address it connects to). With another
    /// name there the harness still verifies, as a client that knows the service name would,
    /// and an app that checks the host it connects to fails as it does in production.
    pub fn server_name(&self) -> rustls::pki_types::ServerName<'static> {
        self.server_name.clone()
    }
}

impl std::fmt::Debug for TlsMaterial {
    // No key material in any output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("dir", &self.dir.path())
            .field("auth_clients", &self.auth_clients)
            .finish_non_exhaustive()
    }
}

impl PartialEq for TlsMaterial {
    fn eq(&self, other: &Self) -> bool {
        self.dir.path() == other.dir.path()
    }
}
impl Eq for TlsMaterial {}

/// Can this server binary serve TLS? Probed once per binary by starting it with a TLS port and
/// completing a handshake: `Ok(())`, or the server's own words for why not (e.g. a build without
/// `BUILD_TLS` refusing the `tls-port` directive).
pub async fn supports_tls(binary: &ProvisionedServer) -> std::result::Result<(), String> {
    static PROBED: OnceLock<
        Mutex<std::collections::BTreeMap<PathBuf, std::result::Result<(), String>>>,
    > = OnceLock::new();
    let cache = PROBED.get_or_init(Default::default);
    if let Some(known) = cache.lock().expect("probe cache").get(&binary.binary) {
        return known.clone();
    }
    let answer = probe(binary).await;
    cache
        .lock()
        .expect("probe cache")
        .insert(binary.binary.clone(), answer.clone());
    answer
}

/// Start the binary as a TLS-only server through the process runtime: it is ready only once a
/// PING over TLS (with the handshake) answers; a build without TLS exits at start-up, and the
/// start error carries its log's last lines.
async fn probe(binary: &ProvisionedServer) -> std::result::Result<(), String> {
    let spec = super::ServerSpec {
        server: super::ServerRef {
            family: binary.family,
            version: super::spec::parse_version(&binary.version).unwrap_or_default(),
        },
        persistence: super::Persistence::none(),
        settings: Default::default(),
        mode: Default::default(),
        secrets: Some(super::acl::Secrets::for_cell(
            Some(&TlsOptions::default()),
            &[],
        )?),
    };
    match super::ServerProcess::start(&spec, binary).await {
        Ok(server) => {
            drop(server);
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The reason a TLS cell on a server without TLS gets: not a failure of its settings.
pub fn unsupported_reason(binary: &ProvisionedServer, why: &str) -> String {
    format!(
        "not supported by this build: {} {} ({}) cannot serve TLS; probed by starting it with a \
         tls-port: {why}",
        binary.family.name(),
        binary.version,
        binary.source
    )
}

//! Test certificates, made at test time with rcgen into a fresh temporary directory: a
//! CA, a server certificate it signed for `localhost` and 127.0.0.1, a client
//! certificate, an expired server certificate, and one for another host.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};
use switchboard::client::{ClientTls, TlsOptions};

/// A CA able to sign certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf certificate for `names`, valid now unless `expired`; returns (cert, key)
    /// PEM.
    pub fn issue(&self, names: &[&str], client: bool, expired: bool) -> (String, String) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "switchboard test");
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A temporary directory of PEM files, removed when dropped.
pub struct Certs {
    pub dir: PathBuf,
    pub ca: Ca,
}

impl Certs {
    /// A directory holding `ca.pem`, `server.pem`/`server.key` (localhost and
    /// 127.0.0.1), `client.pem`/`client.key`, `expired.pem`/`expired.key` and
    /// `wronghost.pem`/`wronghost.key`.
    pub fn new(tag: &str) -> Certs {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-tls-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = Ca::new("switchboard test CA");
        let certs = Certs { dir, ca };
        certs.write("ca.pem", &certs.ca.pem());
        let localhost = ["localhost", "127.0.0.1"];
        certs.write_pair("server", certs.ca.issue(&localhost, false, false));
        certs.write_pair("client", certs.ca.issue(&["client"], true, false));
        certs.write_pair("expired", certs.ca.issue(&localhost, false, true));
        certs.write_pair(
            "wronghost",
            certs.ca.issue(&["other.example"], false, false),
        );
        certs
    }

    pub fn write(&self, name: &str, pem: &str) {
        std::fs::write(self.dir.join(name), pem).unwrap();
    }

    pub fn write_pair(&self, name: &str, (cert, key): (String, String)) {
        self.write(&format!("{name}.pem"), &cert);
        self.write(&format!("{name}.key"), &key);
    }

    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    /// Server flags serving the certificate pair `name`.
    pub fn server_flags(&self, name: &str) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.path(&format!("{name}.pem")),
            "--tls-key".into(),
            self.path(&format!("{name}.key")),
        ]
    }

    /// A client configuration trusting this CA, checking the name `localhost`.
    pub fn client(&self) -> ClientTls {
        client_trusting(&self.dir.join("ca.pem"), None)
    }

    /// As `client`, presenting the client certificate.
    pub fn client_with_cert(&self) -> ClientTls {
        let options = TlsOptions {
            ca_file: Some(self.dir.join("ca.pem")),
            cert: Some(self.dir.join("client.pem")),
            key: Some(self.dir.join("client.key")),
            ..TlsOptions::default()
        };
        ClientTls::new(&options, "localhost").unwrap()
    }
}

/// A client configuration trusting the CAs in `ca`, checking `name` (default
/// `localhost`).
pub fn client_trusting(ca: &Path, name: Option<&str>) -> ClientTls {
    let options = TlsOptions {
        ca_file: Some(ca.to_path_buf()),
        ..TlsOptions::default()
    };
    ClientTls::new(&options, name.unwrap_or("localhost")).unwrap()
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

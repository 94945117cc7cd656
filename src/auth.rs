//! Who may use the server: the token a connection's HELLO must carry, and protected
//! mode (loopback clients only) for a server with no token.
//!
//! The token is read from a file, so it never appears in `ps` output, and reread on
//! SIGHUP. Only its SHA-256 digest is kept. A HELLO's token is hashed and the two
//! fixed-size digests are compared with `subtle`'s constant-time equality: neither the
//! length of the guess nor how many of its bytes were right changes how long the
//! comparison takes (a plain `==` stops at the first difference).

use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Longest token, in bytes: what HELLO can carry.
pub const MAX_TOKEN: usize = switchboard_protocol::msg::hello::MAX_TOKEN;
/// Largest frame, length field included, a connection may send before it has
/// authenticated: room for a HELLO with the longest token, and no more, so a client
/// that has proven nothing cannot make the server buffer a megabyte.
pub const PRE_AUTH_MAX_FRAME: u32 = 4096;
/// How long a connection may take to send its HELLO when a token is required.
pub const DEFAULT_AUTH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("cannot read the token file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file's token is empty or too long.
    #[error("the token file {} holds {len} bytes of token; a token is 1 to {MAX_TOKEN} bytes", path.display())]
    Length {
        /// The file.
        path: PathBuf,
        /// The token's length after the line end was removed.
        len: usize,
    },
}

/// Reads the token in `path`: the file's content without one trailing line end
/// (`\n` or `\r\n`), so `echo secret > file` works.
///
/// # Errors
/// See [`TokenError`].
pub fn read_token(path: &Path) -> Result<Vec<u8>, TokenError> {
    let mut token = std::fs::read(path).map_err(|source| TokenError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if token.ends_with(b"\n") {
        token.pop();
        if token.ends_with(b"\r") {
            token.pop();
        }
    }
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Err(TokenError::Length {
            path: path.to_path_buf(),
            len: token.len(),
        });
    }
    Ok(token)
}

/// The token a server requires, as a digest, and the file it came from.
#[derive(Debug)]
pub struct TokenCheck {
    path: PathBuf,
    digest: RwLock<[u8; 32]>,
}

impl TokenCheck {
    /// Reads the token in `path`.
    ///
    /// # Errors
    /// See [`TokenError`].
    pub fn load(path: &Path) -> Result<TokenCheck, TokenError> {
        let digest = digest(&read_token(path)?);
        Ok(TokenCheck {
            path: path.to_path_buf(),
            digest: RwLock::new(digest),
        })
    }

    /// A check for `token` itself, with no file behind it (tests, embedding). A
    /// reload keeps it.
    pub fn from_token(token: &[u8]) -> TokenCheck {
        TokenCheck {
            path: PathBuf::new(),
            digest: RwLock::new(digest(token)),
        }
    }

    /// Rereads the token file; on an error the old token stays in force.
    ///
    /// # Errors
    /// See [`TokenError`].
    pub fn reload(&self) -> Result<(), TokenError> {
        if self.path.as_os_str().is_empty() {
            return Ok(());
        }
        let fresh = digest(&read_token(&self.path)?);
        *self.digest.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// Whether `token` is the server's, in time that does not depend on it.
    pub fn accepts(&self, token: &[u8]) -> bool {
        let offered = digest(token);
        let expected = *self.digest.read().unwrap_or_else(|e| e.into_inner());
        bool::from(offered.ct_eq(&expected))
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// Whether `ip` is a loopback address: `127.0.0.0/8`, `::1`, or IPv4-mapped
/// loopback (`::ffff:127.x.y.z`, what a dual-stack socket reports for an IPv4
/// loopback client).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// What DENIED tells a client refused by protected mode, for its operator.
pub const PROTECTED_MODE_MESSAGE: &[u8] =
    b"protected mode: this server has no authentication configured, so it serves only \
      clients on its own machine (loopback). To serve others, start it with \
      --auth-token-file FILE (recommended), or with --protected-mode no if the network \
      is trusted";

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn loopback_addresses_include_ipv4_mapped_ones() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:127.1.2.3",
        ] {
            assert!(is_loopback(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "10.0.0.1",
            "0.0.0.0",
            "::",
            "::ffff:10.0.0.1",
            "fe80::1",
            "192.168.1.1",
            "::2",
        ] {
            assert!(!is_loopback(ip.parse().unwrap()), "{ip}");
        }
        assert!(is_loopback(IpAddr::V6(
            Ipv4Addr::LOCALHOST.to_ipv6_mapped()
        )));
        assert!(!is_loopback(IpAddr::V6(Ipv6Addr::UNSPECIFIED)));
    }

    #[test]
    fn tokens_are_compared_by_digest() {
        let check = TokenCheck::from_token(b"s3cret");
        assert!(check.accepts(b"s3cret"));
        for wrong in [&b""[..], b"s3cre", b"s3cret ", b"S3cret", &[0u8; 256]] {
            assert!(!check.accepts(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn token_files_lose_one_line_end_and_must_hold_a_token() {
        let dir = std::env::temp_dir().join(format!("sb-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        for (content, want) in [
            (&b"abc\n"[..], Some(&b"abc"[..])),
            (b"abc\r\n", Some(b"abc")),
            (b"abc", Some(b"abc")),
            (b"a b\n\n", Some(b"a b\n")),
            (b"\n", None),
            (b"", None),
        ] {
            std::fs::write(&file, content).unwrap();
            assert_eq!(read_token(&file).ok().as_deref(), want, "{content:?}");
        }
        std::fs::write(&file, vec![b'x'; MAX_TOKEN + 1]).unwrap();
        assert!(read_token(&file).is_err());

        std::fs::write(&file, "old\n").unwrap();
        let check = TokenCheck::load(&file).unwrap();
        std::fs::write(&file, "new\n").unwrap();
        check.reload().unwrap();
        assert!(check.accepts(b"new") && !check.accepts(b"old"));
        std::fs::write(&file, "").unwrap();
        assert!(check.reload().is_err());
        assert!(check.accepts(b"new"), "a failed reload keeps the token");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

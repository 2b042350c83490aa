//! Credentials at rest: sealed with XChaCha20-Poly1305 under a key kept outside the state
//! database (`SLUICE_SECRET_KEY`, base64 of 32 bytes; or the file `SLUICE_SECRET_KEY_FILE`;
//! or `secret.key` beside the state, created with mode 0600). The database alone reveals nothing.

use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use std::path::{Path, PathBuf};

/// What can go wrong with secrets.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key is missing or malformed.
    #[error("secret key {0}")]
    Key(String),
    /// A sealed value does not open with this key.
    #[error(
        "a stored credential cannot be decrypted with this key (was the state created with another SLUICE_SECRET_KEY?)"
    )]
    Open,
}

/// Seals and opens credentials.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

const PREFIX: &str = "sealed:v1:";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl SecretBox {
    /// The key from the environment, else from the key file (created when absent).
    pub fn load(state_dir: &Path) -> Result<Self, SecretError> {
        let key = match std::env::var("SLUICE_SECRET_KEY") {
            Ok(k) => {
                b64().decode(k.trim()).map_err(|e| SecretError::Key(format!("SLUICE_SECRET_KEY is not base64: {e}")))?
            }
            Err(_) => {
                let path = std::env::var("SLUICE_SECRET_KEY_FILE")
                    .map(PathBuf::from)
                    .unwrap_or_else(|_| state_dir.join("secret.key"));
                Self::key_file(&path)?
            }
        };
        if key.len() != 32 {
            return Err(SecretError::Key(format!("must be 32 bytes, it is {}", key.len())));
        }
        Ok(Self { cipher: XChaCha20Poly1305::new(Key::from_slice(&key)) })
    }

    fn key_file(path: &Path) -> Result<Vec<u8>, SecretError> {
        let io = |e: std::io::Error| SecretError::Key(format!("{}: {e}", path.display()));
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(io)?;
            return b64()
                .decode(text.trim())
                .map_err(|e| SecretError::Key(format!("{}: not base64: {e}", path.display())));
        }
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(path).map_err(io)?;
        std::io::Write::write_all(&mut f, b64().encode(key).as_bytes()).map_err(io)?;
        Ok(key.to_vec())
    }

    /// Seals a value (a fresh random nonce each time).
    pub fn seal(&self, plain: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self.cipher.encrypt(&nonce, plain.as_bytes()).expect("encryption of a string does not fail");
        let mut bytes = nonce.to_vec();
        bytes.extend(ct);
        format!("{PREFIX}{}", b64().encode(bytes))
    }

    /// Opens a sealed value; a value that is not sealed is returned as is.
    pub fn open(&self, value: &str) -> Result<String, SecretError> {
        let Some(rest) = value.strip_prefix(PREFIX) else { return Ok(value.to_string()) };
        let bytes = b64().decode(rest).map_err(|_| SecretError::Open)?;
        if bytes.len() < 24 {
            return Err(SecretError::Open);
        }
        let (nonce, ct) = bytes.split_at(24);
        let plain = self.cipher.decrypt(XNonce::from_slice(nonce), ct).map_err(|_| SecretError::Open)?;
        String::from_utf8(plain).map_err(|_| SecretError::Open)
    }

    /// Whether a stored value is sealed.
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_refuses_another_key() {
        let d = tempfile::tempdir().unwrap();
        let a = SecretBox::load(d.path()).unwrap();
        let sealed = a.seal("postgres://u:hunter2@db/x");
        assert!(SecretBox::is_sealed(&sealed) && !sealed.contains("hunter2"));
        assert_ne!(sealed, a.seal("postgres://u:hunter2@db/x"), "fresh nonce each time");
        assert_eq!(SecretBox::load(d.path()).unwrap().open(&sealed).unwrap(), "postgres://u:hunter2@db/x");
        assert_eq!(a.open("plain").unwrap(), "plain");
        let other = tempfile::tempdir().unwrap();
        assert!(matches!(SecretBox::load(other.path()).unwrap().open(&sealed), Err(SecretError::Open)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(d.path().join("secret.key")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

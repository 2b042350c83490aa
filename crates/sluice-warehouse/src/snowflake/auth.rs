//! Key-pair authentication: an RS256 JWT signed with the user's RSA key (ring does the
//! cryptography). Snowflake identifies the key by the SHA-256 fingerprint of its public key's
//! DER `SubjectPublicKeyInfo`, as `ALTER USER ... SET RSA_PUBLIC_KEY` registers it.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a login JWT is valid (Snowflake accepts at most an hour).
const LIFETIME: Duration = Duration::from_secs(59 * 60);

/// An RSA key read from a PEM file.
pub struct KeyPair {
    key: RsaKeyPair,
    /// `SHA256:` and the base64 SHA-256 of the public key's DER `SubjectPublicKeyInfo`.
    pub fingerprint: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({})", self.fingerprint)
    }
}

impl KeyPair {
    /// Reads an unencrypted PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) PEM.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        if pem.contains("ENCRYPTED PRIVATE KEY") {
            return Err("the key is encrypted; give an unencrypted PKCS#8 key (openssl pkcs8 -nocrypt)".into());
        }
        let (label, der) = pem_block(pem).ok_or("no PEM block (-----BEGIN PRIVATE KEY-----) in the file")?;
        let key = match label.as_str() {
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            other => return Err(format!("a `{other}` PEM block is not an RSA private key")),
        }
        .map_err(|e| format!("not a usable RSA private key: {e}"))?;
        let spki = spki_der(key.public().as_ref());
        let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
        Ok(Self { key, fingerprint: format!("SHA256:{}", STANDARD.encode(digest.as_ref())) })
    }

    /// The login JWT for `account` and `user`: `iss` is `ACCOUNT.USER.SHA256:fingerprint`,
    /// `sub` is `ACCOUNT.USER` (both upper case, the account without region or domain).
    pub fn jwt(&self, account: &str, user: &str) -> Result<String, String> {
        let qualified = format!("{}.{}", jwt_account(account), user.to_uppercase());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "iss": format!("{qualified}.{}", self.fingerprint),
            "sub": qualified,
            "iat": now,
            "exp": now + LIFETIME.as_secs(),
        });
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{payload}");
        let mut sig = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), input.as_bytes(), &mut sig)
            .map_err(|_| "signing the login token failed".to_string())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// The account as JWT claims name it: upper case, without region or domain
/// (`xy12345.eu-west-1` → `XY12345`); a `.global` account is cut at its first `-`.
pub fn jwt_account(account: &str) -> String {
    let a = if account.contains(".global") {
        account.split('-').next().unwrap_or(account)
    } else {
        account.split('.').next().unwrap_or(account)
    };
    a.to_uppercase()
}

/// The first PEM block: its label and its bytes.
pub fn pem_block(pem: &str) -> Option<(String, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + 11..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_start = label_end + 5;
    let end = rest.find(&format!("-----END {label}-----"))?;
    let b64: String = rest.get(body_start..end)?.chars().filter(|c| !c.is_whitespace()).collect();
    Some((label, STANDARD.decode(b64).ok()?))
}

/// Wraps a PKCS#1 `RSAPublicKey` in a `SubjectPublicKeyInfo` (rsaEncryption, NULL parameters).
pub fn spki_der(pkcs1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier: SEQUENCE { OID 1.2.840.113549.1.1.1, NULL }
    const ALG: [u8; 15] = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let mut body = ALG.to_vec();
    body.extend(der_tlv(0x03, &bits));
    der_tlv(0x30, &body)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

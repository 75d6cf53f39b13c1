//! Validation of OAuth 2.0 bearer tokens (RFC 6750) that are JSON Web Tokens (RFC 7519), for the
//! SASL mechanisms OAUTHBEARER (RFC 7628) and XOAUTH2.
//!
//! Meta does not talk to the identity provider: the operator configures the issuer's name and its
//! verification key — an HS256 shared secret, an RS256 public key (PEM), or a JWKS file (RFC 7517)
//! holding several keys told apart by `kid`, which is how issuers rotate keys. A token is accepted
//! when its signature verifies with the key of its algorithm, `exp` is in the future and `nbf` in
//! the past (with a small leeway for clock skew), `iss` is the configured issuer and, when an
//! audience is configured, `aud` contains it. One configurable claim (`sub` by default, or e.g.
//! `email`) names the account.
//!
//! The key file is re-read by [`TokenValidator::reload`] (the roles call it every few seconds), so
//! a rotated JWKS takes effect without a restart.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Longest token looked at; real access tokens are a few KiB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Longest account name a claim may carry (the same bound as login names).
const MAX_NAME_BYTES: usize = 256;
/// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output.
const MIN_HMAC_SECRET_BYTES: usize = 32;

/// Where the issuer's verification key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKeySource {
    /// A file holding the shared HS256 secret (a trailing newline is ignored).
    Hs256SecretFile(PathBuf),
    /// A PEM file holding the issuer's RSA public key (RS256).
    Rs256PublicKeyFile(PathBuf),
    /// A JWKS file (RFC 7517 §5): RSA keys verify RS256, P-256 keys ES256.
    JwksFile(PathBuf),
}

impl TokenKeySource {
    fn path(&self) -> &Path {
        match self {
            TokenKeySource::Hs256SecretFile(p)
            | TokenKeySource::Rs256PublicKeyFile(p)
            | TokenKeySource::JwksFile(p) => p,
        }
    }
}

/// What a token must satisfy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// The required `iss` claim.
    pub issuer: String,
    /// When set, `aud` must contain it.
    pub audience: Option<String>,
    pub key: TokenKeySource,
    /// The claim whose string value is the account's login name.
    pub user_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
}

/// Errors loading the issuer's key: the configuration is wrong (start-up fails) or, on reload,
/// the new file is not usable yet (the previous key stays in force).
#[derive(Debug, thiserror::Error)]
pub enum TokenKeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("invalid token settings: {0}")]
    Settings(String),
}

/// Why a token was refused; logged, never shown to the client (which only learns
/// `invalid_token`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejected {
    #[error("token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("no verification key for key id {0:?} and algorithm {1:?}")]
    UnknownKey(Option<String>, Algorithm),
    #[error("token failed validation: {0}")]
    Invalid(String),
    #[error("token has no string claim {0:?} naming an account")]
    NoAccountClaim(String),
}

/// One verification key and the only algorithm it verifies.
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The keys in force and the file contents they came from.
struct LoadedKeys {
    keys: Vec<Key>,
    source: Vec<u8>,
}

/// Checks bearer tokens against one issuer's key(s).
pub struct TokenValidator {
    settings: TokenSettings,
    keys: RwLock<Arc<LoadedKeys>>,
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenValidator")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl TokenValidator {
    /// Reads the key file and checks the settings.
    pub fn load(settings: TokenSettings) -> Result<TokenValidator, TokenKeyError> {
        if settings.issuer.is_empty() {
            return Err(TokenKeyError::Settings(
                "the issuer must not be empty".into(),
            ));
        }
        if settings.user_claim.is_empty() {
            return Err(TokenKeyError::Settings(
                "the user claim must not be empty".into(),
            ));
        }
        if settings.audience.as_deref() == Some("") {
            return Err(TokenKeyError::Settings(
                "the audience must not be empty when given".into(),
            ));
        }
        let source = read(settings.key.path())?;
        let keys = parse_keys(&settings.key, &source)?;
        Ok(TokenValidator {
            settings,
            keys: RwLock::new(Arc::new(LoadedKeys { keys, source })),
        })
    }

    /// Re-reads the key file; when its contents changed and are valid, the new keys replace the
    /// old ones. Returns whether they did. On error the keys in force stay.
    pub fn reload(&self) -> Result<bool, TokenKeyError> {
        let source = read(self.settings.key.path())?;
        if self.current().source == source {
            return Ok(false);
        }
        let keys = parse_keys(&self.settings.key, &source)?;
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(LoadedKeys { keys, source });
        Ok(true)
    }

    fn current(&self) -> Arc<LoadedKeys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The lower-cased login name a valid token names.
    pub fn account_name(&self, token: &str) -> Result<String, TokenRejected> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenRejected::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenRejected::Malformed)?;
        let keys = self.current();
        // With a kid the key must carry it; without one, only an unambiguous key set will do.
        let candidates: Vec<&Key> = keys
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| header.kid.is_none() || k.kid == header.kid)
            .collect();
        let [key] = candidates[..] else {
            return Err(TokenRejected::UnknownKey(header.kid, header.alg));
        };
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = self.settings.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        match &self.settings.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            }
            None => {
                validation.validate_aud = false;
                validation.set_required_spec_claims(&["exp", "iss"]);
            }
        }
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key.key,
            &validation,
        )
        .map_err(|e| TokenRejected::Invalid(e.to_string()))?;
        let name = data
            .claims
            .get(&self.settings.user_claim)
            .and_then(serde_json::Value::as_str)
            .filter(|n| !n.is_empty() && n.len() <= MAX_NAME_BYTES)
            .ok_or_else(|| TokenRejected::NoAccountClaim(self.settings.user_claim.clone()))?;
        Ok(name.to_lowercase())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TokenKeyError> {
    std::fs::read(path).map_err(|source| TokenKeyError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_keys(source: &TokenKeySource, bytes: &[u8]) -> Result<Vec<Key>, TokenKeyError> {
    let invalid = |reason: String| TokenKeyError::Invalid {
        path: source.path().to_path_buf(),
        reason,
    };
    match source {
        TokenKeySource::Hs256SecretFile(_) => {
            let secret = bytes.trim_ascii_end();
            if secret.len() < MIN_HMAC_SECRET_BYTES {
                return Err(invalid(format!(
                    "an HS256 secret needs at least {MIN_HMAC_SECRET_BYTES} bytes, found {}",
                    secret.len()
                )));
            }
            Ok(vec![Key {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret),
            }])
        }
        TokenKeySource::Rs256PublicKeyFile(_) => {
            let key = DecodingKey::from_rsa_pem(bytes)
                .map_err(|e| invalid(format!("not an RSA public key in PEM: {e}")))?;
            Ok(vec![Key {
                kid: None,
                algorithm: Algorithm::RS256,
                key,
            }])
        }
        TokenKeySource::JwksFile(_) => {
            let set: JwkSet = serde_json::from_slice(bytes)
                .map_err(|e| invalid(format!("not a JWK set: {e}")))?;
            let mut keys = Vec::new();
            for jwk in &set.keys {
                if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
                    continue;
                }
                // Symmetric keys do not belong in a published key set; other curves and
                // algorithms are not offered.
                let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
                    (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => {
                        Algorithm::RS256
                    }
                    (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                        if ec.curve == EllipticCurve::P256 =>
                    {
                        Algorithm::ES256
                    }
                    _ => {
                        tracing::warn!(
                            path = %source.path().display(),
                            kid = ?jwk.common.key_id,
                            "skipping a JWK that is neither an RS256 nor an ES256 signing key"
                        );
                        continue;
                    }
                };
                let key = DecodingKey::from_jwk(jwk).map_err(|e| {
                    invalid(format!("key {:?} is unusable: {e}", jwk.common.key_id))
                })?;
                keys.push(Key {
                    kid: jwk.common.key_id.clone(),
                    algorithm,
                    key,
                });
            }
            if keys.is_empty() {
                return Err(invalid(
                    "the JWK set holds no RS256 or ES256 signing key".into(),
                ));
            }
            Ok(keys)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use rsa::traits::PublicKeyParts;
    use serde_json::json;
    use std::sync::OnceLock;

    const ISSUER: &str = "https://id.example.test";
    const SECRET: &[u8] = b"a test-only HS256 secret of more than 32 bytes";

    /// An RSA key pair made at test time (made once: generation takes a moment).
    struct RsaPair {
        private_pem: String,
        public_pem: String,
        n: String,
        e: String,
    }

    fn rsa_pair() -> &'static RsaPair {
        static PAIR: OnceLock<RsaPair> = OnceLock::new();
        PAIR.get_or_init(|| {
            let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
            let public = private.to_public_key();
            RsaPair {
                private_pem: private.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
                public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
                n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            }
        })
    }

    fn now() -> i64 {
        jsonwebtoken::get_current_timestamp() as i64
    }

    fn claims(sub: &str) -> serde_json::Value {
        json!({ "iss": ISSUER, "sub": sub, "exp": now() + 300, "iat": now() })
    }

    fn hs256(claims: &serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn rs256(kid: Option<&str>, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = kid.map(str::to_string);
        let key = EncodingKey::from_rsa_pem(rsa_pair().private_pem.as_bytes()).unwrap();
        encode(&header, claims, &key).unwrap()
    }

    struct Fixture {
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, contents).unwrap();
            path
        }

        fn validator(&self, key: TokenKeySource, audience: Option<&str>) -> TokenValidator {
            TokenValidator::load(TokenSettings {
                issuer: ISSUER.into(),
                audience: audience.map(str::to_string),
                key,
                user_claim: "sub".into(),
                leeway: Duration::from_secs(30),
            })
            .unwrap()
        }
    }

    fn invalid(r: Result<String, TokenRejected>) -> bool {
        matches!(r, Err(TokenRejected::Invalid(_)))
    }

    #[test]
    fn hs256_tokens_are_checked_claim_by_claim() {
        let f = Fixture::new();
        let mut secret = SECRET.to_vec();
        secret.push(b'\n');
        let v = f.validator(
            TokenKeySource::Hs256SecretFile(f.file("secret", &secret)),
            None,
        );
        assert_eq!(v.account_name(&hs256(&claims("Alice"))), Ok("alice".into()));

        let wrong_key = encode(
            &Header::new(Algorithm::HS256),
            &claims("alice"),
            &EncodingKey::from_secret(b"another secret of more than 32 bytes...."),
        )
        .unwrap();
        assert!(invalid(v.account_name(&wrong_key)));

        let mut c = claims("alice");
        c["exp"] = json!(now() - 120);
        assert!(invalid(v.account_name(&hs256(&c))), "expired");
        // Within the leeway an expired token still passes (clock skew).
        c["exp"] = json!(now() - 10);
        assert_eq!(v.account_name(&hs256(&c)), Ok("alice".into()));

        let mut c = claims("alice");
        c["nbf"] = json!(now() + 120);
        assert!(invalid(v.account_name(&hs256(&c))), "not yet valid");

        let mut c = claims("alice");
        c["iss"] = json!("https://evil.example.test");
        assert!(invalid(v.account_name(&hs256(&c))), "other issuer");

        let mut c = claims("alice");
        c.as_object_mut().unwrap().remove("exp");
        assert!(invalid(v.account_name(&hs256(&c))), "no exp");

        let mut c = claims("alice");
        c.as_object_mut().unwrap().remove("sub");
        assert_eq!(
            v.account_name(&hs256(&c)),
            Err(TokenRejected::NoAccountClaim("sub".into()))
        );

        assert_eq!(v.account_name("not a token"), Err(TokenRejected::Malformed));
        assert_eq!(
            v.account_name(&"x".repeat(MAX_TOKEN_BYTES + 1)),
            Err(TokenRejected::TooLarge)
        );
        // A token that claims to need no signature is never accepted.
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims("alice").to_string())
        );
        assert!(v.account_name(&unsigned).is_err());
        // An RS256 token is not checked against an HS256 secret.
        assert!(matches!(
            v.account_name(&rs256(None, &claims("alice"))),
            Err(TokenRejected::UnknownKey(None, Algorithm::RS256))
        ));
    }

    #[test]
    fn audience_when_configured() {
        let f = Fixture::new();
        let v = f.validator(
            TokenKeySource::Hs256SecretFile(f.file("secret", SECRET)),
            Some("imap"),
        );
        let mut c = claims("alice");
        assert!(invalid(v.account_name(&hs256(&c))), "no aud");
        c["aud"] = json!("smtp");
        assert!(invalid(v.account_name(&hs256(&c))), "other aud");
        c["aud"] = json!(["smtp", "imap"]);
        assert_eq!(v.account_name(&hs256(&c)), Ok("alice".into()));
    }

    #[test]
    fn other_user_claims() {
        let f = Fixture::new();
        let v = TokenValidator::load(TokenSettings {
            issuer: ISSUER.into(),
            audience: None,
            key: TokenKeySource::Hs256SecretFile(f.file("secret", SECRET)),
            user_claim: "email".into(),
            leeway: Duration::ZERO,
        })
        .unwrap();
        let mut c = claims("1234567");
        c["email"] = json!("Alice@Example.Test");
        assert_eq!(v.account_name(&hs256(&c)), Ok("alice@example.test".into()));
        c["email"] = json!(42);
        assert!(matches!(
            v.account_name(&hs256(&c)),
            Err(TokenRejected::NoAccountClaim(_))
        ));
    }

    #[test]
    fn rs256_with_a_pem_public_key() {
        let f = Fixture::new();
        let pair = rsa_pair();
        let v = f.validator(
            TokenKeySource::Rs256PublicKeyFile(f.file("key.pem", pair.public_pem.as_bytes())),
            None,
        );
        assert_eq!(
            v.account_name(&rs256(None, &claims("bob"))),
            Ok("bob".into())
        );
        // The classic confusion: an HS256 token "signed" with the public key as the secret.
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &claims("bob"),
            &EncodingKey::from_secret(pair.public_pem.as_bytes()),
        )
        .unwrap();
        assert!(matches!(
            v.account_name(&forged),
            Err(TokenRejected::UnknownKey(None, Algorithm::HS256))
        ));
    }

    #[test]
    fn jwks_keys_are_chosen_by_kid_and_reloaded() {
        let f = Fixture::new();
        let pair = rsa_pair();
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let point = ec.public_key_raw();
        let rsa_jwk = json!({"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256",
                             "n": pair.n, "e": pair.e});
        let ec_jwk = json!({"kty": "EC", "kid": "e1", "crv": "P-256",
                            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                            "y": URL_SAFE_NO_PAD.encode(&point[33..65])});
        let jwks = f.file(
            "jwks.json",
            json!({ "keys": [rsa_jwk, ec_jwk] }).to_string().as_bytes(),
        );
        let v = f.validator(TokenKeySource::JwksFile(jwks.clone()), None);
        assert_eq!(
            v.account_name(&rs256(Some("r1"), &claims("carol"))),
            Ok("carol".into())
        );
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("e1".into());
        let es = encode(
            &header,
            &claims("dave"),
            &EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(v.account_name(&es), Ok("dave".into()));
        assert!(matches!(
            v.account_name(&rs256(Some("gone"), &claims("carol"))),
            Err(TokenRejected::UnknownKey(Some(_), _))
        ));
        // Without a kid the RSA key is the only RS256 candidate.
        assert_eq!(
            v.account_name(&rs256(None, &claims("carol"))),
            Ok("carol".into())
        );

        // Rotation: the issuer drops r1. Unchanged file: nothing to do.
        assert!(!v.reload().unwrap());
        std::fs::write(&jwks, json!({ "keys": [ec_jwk] }).to_string()).unwrap();
        assert!(v.reload().unwrap());
        assert!(
            v.account_name(&rs256(Some("r1"), &claims("carol")))
                .is_err()
        );
        assert_eq!(v.account_name(&es), Ok("dave".into()));
        // A broken file keeps the keys in force.
        std::fs::write(&jwks, "{").unwrap();
        assert!(v.reload().is_err());
        assert_eq!(v.account_name(&es), Ok("dave".into()));
    }

    #[test]
    fn bad_key_files_are_refused() {
        let f = Fixture::new();
        let load = |key| {
            TokenValidator::load(TokenSettings {
                issuer: ISSUER.into(),
                audience: None,
                key,
                user_claim: "sub".into(),
                leeway: Duration::ZERO,
            })
        };
        let short = f.file("short", b"too short\n");
        assert!(matches!(
            load(TokenKeySource::Hs256SecretFile(short)),
            Err(TokenKeyError::Invalid { .. })
        ));
        let not_pem = f.file("not.pem", b"hello");
        assert!(matches!(
            load(TokenKeySource::Rs256PublicKeyFile(not_pem)),
            Err(TokenKeyError::Invalid { .. })
        ));
        let oct_only = f.file(
            "oct.json",
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})
                .to_string()
                .as_bytes(),
        );
        assert!(matches!(
            load(TokenKeySource::JwksFile(oct_only)),
            Err(TokenKeyError::Invalid { .. })
        ));
        assert!(matches!(
            load(TokenKeySource::JwksFile(f.dir.path().join("missing"))),
            Err(TokenKeyError::Read { .. })
        ));
        let empty_issuer = TokenValidator::load(TokenSettings {
            issuer: String::new(),
            audience: None,
            key: TokenKeySource::Hs256SecretFile(f.file("s", SECRET)),
            user_claim: "sub".into(),
            leeway: Duration::ZERO,
        });
        assert!(matches!(empty_issuer, Err(TokenKeyError::Settings(_))));
    }
}

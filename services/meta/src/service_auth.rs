//! Authentication between roles: who may call meta's gRPC API.
//!
//! The gRPC API trusts its caller with everything a user could do and more — it names the user
//! of every call, reports the client address login throttling counts against, and names the
//! blob keys a message points at. So only Yubin's own front-ends and LMTP nodes may call it:
//! every call carries `authorization: Bearer <secret>` (the HTTP scheme of RFC 6750 §2.1, as
//! gRPC carries credentials in request metadata), a secret shared by the roles of one
//! installation and read from a file so that orchestrators can mount it ([`ServiceSecret`]).
//!
//! - [`CallCredentials`]: the client side, the interceptor of [`crate::GrpcMetaClient`]; it also
//!   propagates the trace context ([`crate::trace::inject`]).
//! - [`CallerCheck`]: the server side, run before any RPC; a missing or wrong secret gets
//!   `UNAUTHENTICATED` and is counted in `yubin_grpc_server_unauthenticated_total`.
//!
//! The bearer authenticates the caller; it does not encrypt. What keeps the secret (and the mail)
//! from other workloads in transit is the network meta listens on: loopback, a private network,
//! or Kubernetes NetworkPolicies that admit only the front-ends and LMTP (see docs/operations.md).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use subtle::ConstantTimeEq;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::{Request, Status};

/// Shortest secret accepted: 256 bits when made of hex digits, more as base64.
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest secret file read: a secret is one short line; anything larger is the wrong file.
pub const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// The metadata key the bearer travels in (gRPC over HTTP/2: lower-case header names).
const AUTHORIZATION: &str = "authorization";

/// Errors of reading or checking a [`ServiceSecret`].
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading the grpc secret file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the grpc secret file {path} is larger than {MAX_SECRET_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("the grpc secret is shorter than {MIN_SECRET_BYTES} bytes")]
    TooShort,
    #[error("the grpc secret must be printable ASCII without spaces (e.g. `openssl rand -hex 32`)")]
    NotPrintable,
}

/// The secret the roles of one installation share. Its `Debug` form never shows it.
///
/// The file holds one secret per line: callers present the first, meta accepts every one. That
/// lets the secret be rotated without a moment where some role holds a secret others refuse
/// (docs/operations.md, "Rotating the gRPC secret").
#[derive(Clone)]
pub struct ServiceSecret {
    value: String,
    /// Further secrets meta accepts (the lines after the first).
    also_accepted: Vec<String>,
}

impl std::fmt::Debug for ServiceSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceSecret(…)")
    }
}

impl ServiceSecret {
    /// The secrets in `text`, one per line. Surrounding whitespace and empty lines are dropped
    /// (files end with a newline); each secret must be at least [`MIN_SECRET_BYTES`] of visible
    /// ASCII, which is what an HTTP header value can carry unchanged.
    pub fn parse(text: &str) -> Result<ServiceSecret, SecretError> {
        let mut secrets = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let value = secrets.next().ok_or(SecretError::TooShort)?;
        let checked = |value: &str| {
            if !value.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(SecretError::NotPrintable);
            }
            if value.len() < MIN_SECRET_BYTES {
                return Err(SecretError::TooShort);
            }
            Ok(value.to_string())
        };
        Ok(ServiceSecret {
            value: checked(value)?,
            also_accepted: secrets.map(checked).collect::<Result<_, _>>()?,
        })
    }

    /// The secret in the file at `path` (a Kubernetes Secret or compose secret mounted as a
    /// file; never a command-line argument, which any local user can read in the process list).
    pub fn from_file(path: &Path) -> Result<ServiceSecret, SecretError> {
        let read = |source| SecretError::Read {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > MAX_SECRET_FILE_BYTES {
            return Err(SecretError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        ServiceSecret::parse(&text)
    }

    /// The digest compared on the server: fixed-length, so the comparison time says nothing
    /// about the secret's length or how much of a guess matched.
    fn digest(value: &[u8]) -> [u8; 32] {
        Sha256::digest(value).into()
    }
}

/// The client-side interceptor: the trace context of the current span, and the bearer when the
/// client has a secret.
#[derive(Debug, Clone, Default)]
pub struct CallCredentials {
    bearer: Option<AsciiMetadataValue>,
}

impl CallCredentials {
    /// Credentials that send `secret` with every call; `None` sends none (meta started with
    /// `--grpc-insecure`).
    pub fn new(secret: Option<&ServiceSecret>) -> CallCredentials {
        let bearer = secret.map(|s| {
            let mut value = AsciiMetadataValue::try_from(format!("Bearer {}", s.value))
                .expect("a ServiceSecret is visible ASCII");
            // Kept out of HPACK's dynamic table (RFC 7541 §7.1.3: never-indexed literals).
            value.set_sensitive(true);
            value
        });
        CallCredentials { bearer }
    }
}

impl tonic::service::Interceptor for CallCredentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        crate::trace::inject(request.metadata_mut());
        if let Some(bearer) = &self.bearer {
            request.metadata_mut().insert(AUTHORIZATION, bearer.clone());
        }
        Ok(request)
    }
}

/// The server-side check every call passes before it reaches an RPC.
#[derive(Clone)]
pub enum CallerCheck {
    /// Calls must carry the bearer of one of these secrets (their digests are kept).
    Bearer(Vec<[u8; 32]>),
    /// Anyone who can connect may call: only for tests and experiments on loopback
    /// (`--grpc-insecure`).
    Open,
}

impl std::fmt::Debug for CallerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CallerCheck::Bearer(_) => "CallerCheck::Bearer(…)",
            CallerCheck::Open => "CallerCheck::Open",
        })
    }
}

impl CallerCheck {
    /// Calls must present `secret` (any of its lines).
    pub fn bearer(secret: &ServiceSecret) -> CallerCheck {
        CallerCheck::Bearer(
            std::iter::once(&secret.value)
                .chain(&secret.also_accepted)
                .map(|s| ServiceSecret::digest(s.as_bytes()))
                .collect(),
        )
    }

    /// Whether `metadata` carries the expected bearer.
    fn admits(&self, metadata: &MetadataMap) -> bool {
        let CallerCheck::Bearer(expected) = self else {
            return true;
        };
        let Some(presented) = metadata
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
        else {
            return false;
        };
        let presented = ServiceSecret::digest(presented.as_bytes());
        // Every accepted secret is compared, matching or not: the time taken says nothing about
        // which one matched.
        expected
            .iter()
            .fold(subtle::Choice::from(0), |any, e| any | presented.ct_eq(e))
            .into()
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme name is case-insensitive
/// (RFC 9110 §11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

impl tonic::service::Interceptor for CallerCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.admits(request.metadata()) {
            return Ok(request);
        }
        metrics::counter!("yubin_grpc_server_unauthenticated_total").increment(1);
        // Debug, not warn: a stranger on the port would otherwise write a log line per call.
        // The counter shows refusals; the refused node itself logs why and never turns ready.
        tracing::debug!(
            peer = ?request.remote_addr(),
            "grpc call refused: missing or wrong bearer (is --grpc-secret-file the same on every role?)"
        );
        Err(Status::unauthenticated(
            "this service only answers Yubin roles holding the installation's grpc secret",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn secret(text: &str) -> ServiceSecret {
        ServiceSecret::parse(text).expect("valid secret")
    }

    #[test]
    fn secrets_are_long_visible_ascii_and_trimmed() {
        let s = secret("  0123456789abcdef0123456789abcdef\n");
        assert_eq!(s.value, "0123456789abcdef0123456789abcdef");
        assert!(matches!(
            ServiceSecret::parse("short"),
            Err(SecretError::TooShort)
        ));
        assert!(matches!(
            ServiceSecret::parse("0123456789abcdef 0123456789abcdef"),
            Err(SecretError::NotPrintable)
        ));
        assert!(!format!("{s:?}").contains("0123"), "Debug hides the secret");
    }

    #[test]
    fn the_check_admits_exactly_the_secret() {
        let good = secret("0123456789abcdef0123456789abcdef");
        let check = CallerCheck::bearer(&good);
        let request = |secret: Option<&ServiceSecret>| {
            CallCredentials::new(secret)
                .call(Request::new(()))
                .expect("client interceptor")
        };
        assert!(check.admits(request(Some(&good)).metadata()));
        assert!(!check.admits(request(None).metadata()));
        let wrong = secret("0123456789abcdef0123456789abcdeX");
        assert!(!check.admits(request(Some(&wrong)).metadata()));
        let mut lower = Request::new(());
        lower.metadata_mut().insert(
            AUTHORIZATION,
            "bearer 0123456789abcdef0123456789abcdef".parse().unwrap(),
        );
        assert!(check.admits(lower.metadata()), "scheme is case-insensitive");
        let mut basic = Request::new(());
        basic.metadata_mut().insert(
            AUTHORIZATION,
            "Basic 0123456789abcdef0123456789abcdef".parse().unwrap(),
        );
        assert!(!check.admits(basic.metadata()));
        assert!(CallerCheck::Open.admits(request(None).metadata()));
    }

    #[test]
    fn during_a_rotation_the_first_line_is_presented_and_every_line_accepted() {
        let old = "old-secret-0123456789abcdef0123456789";
        let new = "new-secret-0123456789abcdef0123456789";
        let rotating = secret(&format!("{new}\n{old}\n"));
        let check = CallerCheck::bearer(&rotating);
        let presented = |s: &ServiceSecret| {
            CallCredentials::new(Some(s))
                .call(Request::new(()))
                .expect("client interceptor")
        };
        assert!(check.admits(presented(&secret(old)).metadata()));
        assert!(check.admits(presented(&secret(new)).metadata()));
        let bearer = presented(&rotating);
        assert_eq!(
            bearer
                .metadata()
                .get(AUTHORIZATION)
                .unwrap()
                .to_str()
                .unwrap(),
            format!("Bearer {new}")
        );
        assert!(!CallerCheck::bearer(&secret(old)).admits(bearer.metadata()));
        assert!(matches!(
            ServiceSecret::parse(&format!("{new}\nshort\n")),
            Err(SecretError::TooShort)
        ));
        assert!(matches!(
            ServiceSecret::parse("\n\n"),
            Err(SecretError::TooShort)
        ));
    }
}

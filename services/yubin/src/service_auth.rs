//! Which credentials a role uses on meta's gRPC link (`grpc_secret_file`, `grpc_insecure`):
//! on by default, so that a role started without a secret refuses to run rather than serve or
//! call an open gRPC port (see `yubin_meta::service_auth` for what the secret protects).

use anyhow::{Context, bail};
use std::path::PathBuf;
use yubin_meta::{CallerCheck, ServiceSecret};

/// The two settings as every role that speaks gRPC holds them (top-level keys of its file).
#[derive(Debug, Clone, Copy)]
pub struct GrpcAuth<'a> {
    pub secret_file: Option<&'a PathBuf>,
    pub insecure: bool,
}

impl GrpcAuth<'_> {
    /// Checks what can be checked before start: the two settings exclude each other.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.secret_file.is_some() && self.insecure {
            bail!("grpc_secret_file and grpc_insecure exclude each other");
        }
        Ok(())
    }

    /// The secret `role` presents or demands; `None` only with `grpc_insecure`. Without either
    /// setting the role does not start.
    pub fn secret(&self, role: &str) -> anyhow::Result<Option<ServiceSecret>> {
        self.validate()?;
        match self.secret_file {
            Some(path) => ServiceSecret::from_file(path)
                .map(Some)
                .with_context(|| format!("yubin {role}: loading the grpc secret")),
            None if self.insecure => {
                tracing::warn!(
                    "grpc_insecure: the gRPC link between roles has no shared secret; anyone who \
                     can reach meta's gRPC port reads every mailbox (tests and local experiments only)"
                );
                Ok(None)
            }
            None => bail!(
                "yubin {role} needs --grpc-secret-file (YUBIN_GRPC_SECRET_FILE, or \
                 grpc_secret_file in the config file): a file holding the secret all roles of the \
                 installation share, e.g. made with `openssl rand -hex 32`; --grpc-insecure runs \
                 without one, for tests and local experiments only"
            ),
        }
    }
}

/// What meta demands of its callers.
pub fn caller_check(secret: Option<&ServiceSecret>) -> CallerCheck {
    secret.map_or(CallerCheck::Open, CallerCheck::bearer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_required_unless_insecure_is_explicit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret");
        std::fs::write(&file, "0123456789abcdef0123456789abcdef\n").expect("write");
        let none = GrpcAuth {
            secret_file: None,
            insecure: false,
        };
        let err = none.secret("meta").unwrap_err().to_string();
        assert!(err.contains("--grpc-secret-file"), "{err}");
        let insecure = GrpcAuth {
            secret_file: None,
            insecure: true,
        };
        assert!(insecure.secret("meta").expect("insecure").is_none());
        let given = GrpcAuth {
            secret_file: Some(&file),
            insecure: false,
        };
        assert!(given.secret("meta").expect("secret").is_some());
        let both = GrpcAuth {
            secret_file: Some(&file),
            insecure: true,
        };
        assert!(both.validate().is_err());
        std::fs::write(&file, "short\n").expect("write");
        assert!(given.secret("meta").is_err(), "too short");
        let missing = dir.path().join("missing");
        let absent = GrpcAuth {
            secret_file: Some(&missing),
            insecure: false,
        };
        assert!(absent.secret("imap").is_err());
    }
}

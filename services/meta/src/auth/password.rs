//! Argon2id password hashing: the cost parameters of new hashes ([`PasswordParams`]), hashing
//! and verification against a stored PHC string.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use yubin_meta_api::MetaError;

/// Errors of password hashing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("stored password hash is malformed: {0}")]
    MalformedHash(String),
}

impl From<PasswordError> for MetaError {
    fn from(err: PasswordError) -> MetaError {
        MetaError::Internal(err.to_string())
    }
}

/// Argon2id cost parameters for new hashes. Existing hashes carry their own parameters, so
/// changing these affects only passwords set afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

impl Default for PasswordParams {
    /// OWASP's recommended Argon2id minimum: 19 MiB, 2 passes, 1 lane.
    fn default() -> PasswordParams {
        PasswordParams {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl PasswordParams {
    /// Checks the parameters against Argon2's rules (RFC 9106 §3.1) and sane upper bounds, so a
    /// typo in the configuration is an error at start-up rather than at the first password set.
    pub fn validate(&self) -> Result<(), PasswordError> {
        if !(1..=64).contains(&self.parallelism) {
            return Err(PasswordError::Params(format!(
                "parallelism must be between 1 and 64, got {}",
                self.parallelism
            )));
        }
        if self.iterations == 0 || self.iterations > 100 {
            return Err(PasswordError::Params(format!(
                "iterations must be between 1 and 100, got {}",
                self.iterations
            )));
        }
        // Argon2 needs 8 KiB per lane; above 4 GiB a single login would exhaust most machines.
        let min_memory = 8 * self.parallelism;
        if self.memory_kib < min_memory || self.memory_kib > 4 * 1024 * 1024 {
            return Err(PasswordError::Params(format!(
                "memory must be between {min_memory} KiB (8 per lane) and 4 GiB, got {} KiB",
                self.memory_kib
            )));
        }
        self.hasher().map(|_| ())
    }

    fn hasher(&self) -> Result<Argon2<'static>, PasswordError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Hashes `password` with these parameters and a random salt; returns the PHC string.
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let salt = SaltString::generate(&mut OsRng);
        self.hasher()?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    }
}

/// Hashes `password` with the default [`PasswordParams`]; returns the PHC string.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    PasswordParams::default().hash(password)
}

/// Whether `password` matches the PHC string `phc` (with the parameters recorded in it).
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::MalformedHash(e.to_string()))?;
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(PasswordError::MalformedHash(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_strings_with_random_salt() {
        let a = hash_password("secret").unwrap();
        let b = hash_password("secret").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b);
        assert!(verify_password("secret", &a).unwrap());
        assert!(!verify_password("Secret", &a).unwrap());
        assert!(verify_password("secret", "not a hash").is_err());
        let bad = PasswordParams {
            memory_kib: 0,
            ..PasswordParams::default()
        };
        assert!(matches!(bad.hash("x"), Err(PasswordError::Params(_))));
    }
}

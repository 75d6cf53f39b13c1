//! Authentication over the gRPC wire: the client address reaches meta's throttling, bearer tokens
//! signed with an RS256 key made at test time are checked by meta, and the front-end can ask
//! whether bearer tokens are accepted at all.

mod common;

use common::{EchoStore, Running, embedded_store, serve};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use yubin_meta::pb;
use yubin_meta::{
    AuthConfig, PasswordAuthenticator, PasswordParams, ThrottlePolicy, TokenKeySource,
    TokenSettings, TokenValidator,
};
use yubin_meta_api::*;

const ISSUER: &str = "https://id.example.test";

struct Harness {
    running: Running,
    auth: Arc<PasswordAuthenticator>,
    alice: UserId,
    /// Signs RS256 tokens with the issuer's private key (made for this test run only).
    signing_key: jsonwebtoken::EncodingKey,
    _dir: tempfile::TempDir,
}

async fn harness(with_tokens: bool) -> Harness {
    let params = PasswordParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    let (dir, accounts) = embedded_store().await;
    let alice = accounts
        .create_user("alice", &params.hash("wonderland").unwrap())
        .await
        .unwrap()
        .id;
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let public_pem = private
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let private_pem = private.to_pkcs8_pem(LineEnding::LF).unwrap();
    let key_file = dir.path().join("issuer.pem");
    std::fs::write(&key_file, public_pem).unwrap();
    let config = AuthConfig {
        password_params: params,
        address_throttle: ThrottlePolicy {
            free_failures: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            max_failures: 5,
            window: Duration::from_secs(60),
        },
        ..AuthConfig::default()
    };
    let mut auth = PasswordAuthenticator::with_config(accounts, config);
    if with_tokens {
        auth = auth.with_token_validator(
            TokenValidator::load(TokenSettings {
                issuer: ISSUER.into(),
                audience: None,
                key: TokenKeySource::Rs256PublicKeyFile(key_file),
                user_claim: "email".into(),
                leeway: Duration::from_secs(30),
            })
            .unwrap(),
        );
    }
    let auth = Arc::new(auth);
    let running = serve(Arc::new(EchoStore::default()), auth.clone()).await;
    Harness {
        running,
        auth,
        alice,
        signing_key: jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
        _dir: dir,
    }
}

impl Harness {
    fn token(&self, email: &str) -> String {
        let exp = jsonwebtoken::get_current_timestamp() + 300;
        let claims = serde_json::json!({"iss": ISSUER, "sub": "42", "email": email, "exp": exp});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &self.signing_key,
        )
        .unwrap()
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[tokio::test]
async fn the_client_address_reaches_the_throttle() {
    let h = harness(false).await;
    let client = &h.running.client;
    let bot = ip("203.0.113.9");
    for i in 0..10 {
        assert_eq!(
            client
                .authenticate(&format!("guess{i}"), "wrong", bot)
                .await,
            Err(MetaError::AuthenticationFailed)
        );
    }
    let stats = h.auth.stats();
    assert_eq!((stats.failure, stats.throttled), (5, 5), "{stats:?}");
    assert_eq!(
        client.authenticate("alice", "wonderland", bot).await,
        Err(MetaError::AuthenticationFailed)
    );
    assert_eq!(
        client
            .authenticate("alice", "wonderland", ip("2001:db8::1"))
            .await,
        Ok(h.alice)
    );
    // Without an address only the name counts.
    assert_eq!(
        client.authenticate("alice", "wonderland", None).await,
        Ok(h.alice)
    );
    assert_eq!(client.accepts_bearer_tokens().await, Ok(false));
}

#[tokio::test]
async fn a_malformed_client_address_is_refused() {
    let h = harness(false).await;
    let mut raw = common::authorized_raw_client(h.running.addr).await;
    let status = raw
        .authenticate(pb::AuthenticateRequest {
            name: "alice".into(),
            password: "wonderland".into(),
            client_address: "somewhere".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(h.auth.stats().verifications, 0);
}

#[tokio::test]
async fn rs256_bearer_tokens_over_the_wire() {
    let h = harness(true).await;
    let client = &h.running.client;
    assert_eq!(client.accepts_bearer_tokens().await, Ok(true));
    let here = ip("192.0.2.1");
    assert_eq!(
        client
            .authenticate_bearer(&h.token("Alice"), None, here)
            .await,
        Ok(h.alice)
    );
    assert_eq!(
        client
            .authenticate_bearer(&h.token("alice"), Some("alice"), here)
            .await,
        Ok(h.alice)
    );
    let failed = Err(MetaError::AuthenticationFailed);
    assert_eq!(
        client
            .authenticate_bearer(&h.token("alice"), Some("bob"), here)
            .await,
        failed
    );
    assert_eq!(
        client
            .authenticate_bearer(&h.token("nobody"), None, here)
            .await,
        failed
    );
    let mut tampered = h.token("alice");
    tampered.pop();
    assert_eq!(
        client.authenticate_bearer(&tampered, None, here).await,
        failed
    );
    assert_eq!(
        client.authenticate_bearer("not.a.token", None, here).await,
        failed
    );
}

//! The edge of Yubin's metadata service.
//!
//! - [`server`]: the `yubin.meta.v1.Meta` gRPC service over any [`MailStore`] and
//!   [`Authenticator`] ([`serve_grpc`]).
//! - [`client`]: [`GrpcMetaClient`], the same traits over gRPC, for the front-ends and LMTP.
//! - [`convert`]: wire ⇄ domain types and `MetaError` ⇄ `tonic::Status`.
//! - [`auth`]: Argon2id password hashing and [`PasswordAuthenticator`] (success cache, throttling
//!   per name and per client address).
//! - [`token`]: [`TokenValidator`], JWT bearer tokens for OAUTHBEARER / XOAUTH2.
//! - [`admin`]: the admin REST API ([`admin_router`]) and its client ([`AdminClient`]);
//!   [`openapi`]: its OpenAPI description; without a token it answers only requests addressed
//!   to an IP literal or `localhost` (`admin_host`, against DNS rebinding).
//! - [`service_auth`]: authentication between roles — the shared-secret bearer every gRPC call
//!   carries ([`CallCredentials`]) and meta checks ([`CallerCheck`]).
//! - [`trace`]: trace context propagation over gRPC (client interceptor, server spans).
//!
//! [`MailStore`]: yubin_meta_api::MailStore
//! [`Authenticator`]: yubin_meta_api::Authenticator

pub mod admin;
mod admin_host;
pub mod auth;
pub mod client;
pub mod convert;
pub mod openapi;
pub mod search_program;
pub mod server;
pub mod service_auth;
pub mod token;
pub mod trace;

/// Generated protobuf and gRPC code for `proto/yubin/meta/v1/meta.proto`.
pub mod pb {
    tonic::include_proto!("yubin.meta.v1");
}

pub use admin::{
    AdminBackend, AdminClient, AdminClientError, AliasView, CreatedUser, DeletedUser, MailboxView,
    UserInfo, UserPage, admin_router, admin_routes,
};
pub use auth::{
    AuthConfig, AuthStats, InProcessFailureCounters, PasswordAuthenticator, PasswordError,
    PasswordParams, ThrottlePolicy, hash_password, verify_password,
};
pub use client::GrpcMetaClient;
pub use convert::WireError;
pub use server::{MAX_MESSAGE_BYTES, MetaGrpc, ServeError, serve_grpc};
pub use service_auth::{CallCredentials, CallerCheck, SecretError, ServiceSecret};
pub use token::{TokenKeyError, TokenKeySource, TokenRejected, TokenSettings, TokenValidator};

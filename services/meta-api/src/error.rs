use thiserror::Error;

/// Errors at the metadata boundary, classified by what the caller does with them.
///
/// The IMAP front-end maps them to `NO [code]` responses, the gRPC layer to status codes, LMTP to
/// reply codes; `Unavailable` is the only retryable class.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum MetaError {
    /// The named thing (user, mailbox, message) does not exist: IMAP `NO [NONEXISTENT]`.
    #[error("{0} does not exist")]
    NotFound(String),
    /// Creating something that exists: IMAP `NO [ALREADYEXISTS]`.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The request is malformed or violates a rule (bad mailbox name, deleting INBOX): IMAP `NO
    /// [CANNOT]`, gRPC `InvalidArgument`.
    #[error("{0}")]
    Invalid(String),
    /// A storage limit would be exceeded: IMAP `NO [OVERQUOTA]`.
    #[error("over quota: {0}")]
    OverQuota(String),
    /// A per-mailbox or per-account limit other than quota would be exceeded (keywords per
    /// message or mailbox, mailboxes per account): IMAP `NO [LIMIT]` (RFC 5530 §3). Nothing was
    /// changed.
    #[error("limit reached: {0}")]
    Limit(String),
    /// Wrong credentials or disabled account: IMAP `NO [AUTHENTICATIONFAILED]`.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// A backing store cannot be reached; retry later: IMAP `NO [UNAVAILABLE]`, gRPC `Unavailable`.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// A bug or corrupted data: IMAP `NO [SERVERBUG]`, gRPC `Internal`.
    #[error("internal error: {0}")]
    Internal(String),
}

impl MetaError {
    /// Whether the same call may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MetaError::Unavailable(_))
    }
}

pub type MetaResult<T> = Result<T, MetaError>;

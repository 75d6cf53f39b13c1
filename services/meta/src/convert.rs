//! Conversion between the wire types of `meta.proto` and the domain types of `yubin-meta-api`.
//!
//! Domain → wire is infallible. Wire → domain validates (missing required fields, unknown enum
//! values, a zero user id) and fails with [`WireError`]: the server answers that with
//! `INVALID_ARGUMENT`, the client treats a malformed response as `MetaError::Internal`.
//!
//! [`MetaError`] travels as a `tonic::Status` whose code follows a fixed table, whose message is
//! the error's detail and whose `yubin-error` metadata entry names the variant, so that the
//! client rebuilds exactly the variant the store raised and can tell it apart from a status the
//! transport or a proxy made up.

mod mailbox;

pub use mailbox::mailbox_info_from_pb;

use crate::pb;
use tonic::{Code, Status};
use yubin_meta_api::{
    AppendResult, BlobKey, ChangeEvent, ChangeKind, Changes, CopyResult, FlagOp, IndexedMessage,
    InternalDate, MailboxId, MessageRecord, MetaError, MetadataDepth, ModSeq, NewMessage,
    QuotaLimits, QuotaUsage, SearchIndex, SpecialUse, StoreResult, Uid, UidSet, UidValidity,
    UserId,
};

/// A wire message that does not describe a valid domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message: {0}")]
pub struct WireError(pub String);

impl WireError {
    fn missing(field: &str) -> WireError {
        WireError(format!("missing {field}"))
    }
}

impl From<WireError> for Status {
    fn from(err: WireError) -> Status {
        status_from_meta(MetaError::Invalid(err.to_string()))
    }
}

impl From<WireError> for MetaError {
    /// What the client makes of a response it cannot decode: the server is broken or speaks
    /// another version of the contract, which retrying will not fix.
    fn from(err: WireError) -> MetaError {
        MetaError::Internal(format!("bad response from meta: {err}"))
    }
}

pub(crate) fn required<T>(value: Option<T>, field: &str) -> Result<T, WireError> {
    value.ok_or_else(|| WireError::missing(field))
}

// ---------------------------------------------------------------------------------------------
// Errors

/// Metadata key naming the [`MetaError`] variant of a status raised by meta.
pub const ERROR_KIND_KEY: &str = "yubin-error";

fn error_kind(err: &MetaError) -> (&'static str, Code) {
    match err {
        MetaError::NotFound(_) => ("not-found", Code::NotFound),
        MetaError::AlreadyExists(_) => ("already-exists", Code::AlreadyExists),
        MetaError::Invalid(_) => ("invalid", Code::InvalidArgument),
        MetaError::OverQuota(_) => ("over-quota", Code::ResourceExhausted),
        MetaError::Limit(_) => ("limit", Code::FailedPrecondition),
        MetaError::AuthenticationFailed => ("authentication-failed", Code::Unauthenticated),
        MetaError::Unavailable(_) => ("unavailable", Code::Unavailable),
        MetaError::Internal(_) => ("internal", Code::Internal),
    }
}

/// The status meta answers with for `err`.
pub fn status_from_meta(err: MetaError) -> Status {
    let (kind, code) = error_kind(&err);
    let message = match err {
        MetaError::NotFound(m)
        | MetaError::AlreadyExists(m)
        | MetaError::Invalid(m)
        | MetaError::OverQuota(m)
        | MetaError::Limit(m)
        | MetaError::Unavailable(m)
        | MetaError::Internal(m) => m,
        MetaError::AuthenticationFailed => "authentication failed".to_string(),
    };
    let mut status = Status::new(code, message);
    status.metadata_mut().insert(
        ERROR_KIND_KEY,
        tonic::metadata::MetadataValue::from_static(kind),
    );
    status
}

/// The error a client reports for `status`.
///
/// A status carrying the `yubin-error` entry came from meta and maps back to the same variant.
/// Without it the status was made by the transport, a proxy or a peer of another version: the
/// codes meta uses keep their meaning, the ones that mean "the call did not get through"
/// (connection refused or reset, timeout, cancellation) become the retryable `Unavailable`, and
/// anything else is a contract mismatch, reported as `Internal`.
pub fn meta_from_status(status: &Status) -> MetaError {
    let message = status.message().to_string();
    let kind = status
        .metadata()
        .get(ERROR_KIND_KEY)
        .and_then(|v| v.to_str().ok());
    match kind {
        Some("not-found") => return MetaError::NotFound(message),
        Some("already-exists") => return MetaError::AlreadyExists(message),
        Some("invalid") => return MetaError::Invalid(message),
        Some("over-quota") => return MetaError::OverQuota(message),
        Some("limit") => return MetaError::Limit(message),
        Some("authentication-failed") => return MetaError::AuthenticationFailed,
        Some("unavailable") => return MetaError::Unavailable(message),
        Some("internal") => return MetaError::Internal(message),
        _ => {}
    }
    let detail = if message.is_empty() {
        format!("grpc status {:?}", status.code())
    } else {
        format!("grpc status {:?}: {message}", status.code())
    };
    match status.code() {
        Code::NotFound => MetaError::NotFound(message),
        Code::AlreadyExists => MetaError::AlreadyExists(message),
        Code::InvalidArgument => MetaError::Invalid(message),
        // Meta marks a user's failed login; an unmarked UNAUTHENTICATED is meta (or a proxy)
        // refusing this node itself — a wrong or missing grpc secret. Reporting it as the
        // user's AUTHENTICATIONFAILED would send operators after passwords.
        Code::Unauthenticated => MetaError::Internal(format!(
            "meta refused this node's credentials (is --grpc-secret-file the one meta has?): \
             {detail}"
        )),
        // h2 and hyper failures surface as Unknown or Internal, timeouts as Cancelled or
        // DeadlineExceeded; none of them says anything about the request itself.
        Code::Unavailable
        | Code::Unknown
        | Code::Internal
        | Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        // Without our marker this is h2's ENHANCE_YOUR_CALM or a proxy's rate limit, not a quota.
        | Code::ResourceExhausted => MetaError::Unavailable(detail),
        // OutOfRange (tonic's message-size limit), Unimplemented (version skew) and the rest
        // will not get better by retrying.
        _ => MetaError::Internal(detail),
    }
}

// ---------------------------------------------------------------------------------------------
// Ids and small values

/// The user id of a request. Zero is what an unset proto3 field reads as, so it is refused rather
/// than silently naming some account.
pub fn user_id(raw: u64) -> Result<UserId, WireError> {
    if raw == 0 {
        return Err(WireError::missing("user_id"));
    }
    Ok(UserId(raw))
}

pub fn uids_to_pb(uids: &[Uid]) -> Vec<u32> {
    uids.iter().map(|u| u.0).collect()
}

pub fn uids_from_pb(uids: Vec<u32>) -> Vec<Uid> {
    uids.into_iter().map(Uid).collect()
}

pub fn special_use_to_pb(special_use: Option<SpecialUse>) -> i32 {
    let v = match special_use {
        None => pb::SpecialUse::Unspecified,
        Some(SpecialUse::All) => pb::SpecialUse::All,
        Some(SpecialUse::Archive) => pb::SpecialUse::Archive,
        Some(SpecialUse::Drafts) => pb::SpecialUse::Drafts,
        Some(SpecialUse::Flagged) => pb::SpecialUse::Flagged,
        Some(SpecialUse::Junk) => pb::SpecialUse::Junk,
        Some(SpecialUse::Sent) => pb::SpecialUse::Sent,
        Some(SpecialUse::Trash) => pb::SpecialUse::Trash,
    };
    v as i32
}

pub fn special_use_from_pb(raw: i32) -> Result<Option<SpecialUse>, WireError> {
    let v = pb::SpecialUse::try_from(raw)
        .map_err(|_| WireError(format!("unknown special_use {raw}")))?;
    Ok(match v {
        pb::SpecialUse::Unspecified => None,
        pb::SpecialUse::All => Some(SpecialUse::All),
        pb::SpecialUse::Archive => Some(SpecialUse::Archive),
        pb::SpecialUse::Drafts => Some(SpecialUse::Drafts),
        pb::SpecialUse::Flagged => Some(SpecialUse::Flagged),
        pb::SpecialUse::Junk => Some(SpecialUse::Junk),
        pb::SpecialUse::Sent => Some(SpecialUse::Sent),
        pb::SpecialUse::Trash => Some(SpecialUse::Trash),
    })
}

pub fn flag_op_to_pb(op: FlagOp) -> i32 {
    let v = match op {
        FlagOp::Add => pb::FlagOp::Add,
        FlagOp::Remove => pb::FlagOp::Remove,
        FlagOp::Replace => pb::FlagOp::Replace,
    };
    v as i32
}

pub fn flag_op_from_pb(raw: i32) -> Result<FlagOp, WireError> {
    match pb::FlagOp::try_from(raw) {
        Ok(pb::FlagOp::Add) => Ok(FlagOp::Add),
        Ok(pb::FlagOp::Remove) => Ok(FlagOp::Remove),
        Ok(pb::FlagOp::Replace) => Ok(FlagOp::Replace),
        Ok(pb::FlagOp::Unspecified) => Err(WireError::missing("op")),
        Err(_) => Err(WireError(format!("unknown flag op {raw}"))),
    }
}

pub fn metadata_depth_to_pb(depth: MetadataDepth) -> i32 {
    let v = match depth {
        MetadataDepth::Zero => pb::MetadataDepth::Zero,
        MetadataDepth::One => pb::MetadataDepth::One,
        MetadataDepth::Infinity => pb::MetadataDepth::Infinity,
    };
    v as i32
}

pub fn metadata_depth_from_pb(raw: i32) -> Result<MetadataDepth, WireError> {
    match pb::MetadataDepth::try_from(raw) {
        Ok(pb::MetadataDepth::Zero) => Ok(MetadataDepth::Zero),
        Ok(pb::MetadataDepth::One) => Ok(MetadataDepth::One),
        Ok(pb::MetadataDepth::Infinity) => Ok(MetadataDepth::Infinity),
        Err(_) => Err(WireError(format!("unknown metadata depth {raw}"))),
    }
}

pub fn change_kind_to_pb(kind: ChangeKind) -> i32 {
    let v = match kind {
        ChangeKind::Appended => pb::ChangeKind::Appended,
        ChangeKind::Flags => pb::ChangeKind::Flags,
        ChangeKind::Expunged => pb::ChangeKind::Expunged,
        ChangeKind::MailboxList => pb::ChangeKind::MailboxList,
        ChangeKind::AccountRevoked => pb::ChangeKind::AccountRevoked,
    };
    v as i32
}

pub fn change_kind_from_pb(raw: i32) -> Result<ChangeKind, WireError> {
    match pb::ChangeKind::try_from(raw) {
        Ok(pb::ChangeKind::Appended) => Ok(ChangeKind::Appended),
        Ok(pb::ChangeKind::Flags) => Ok(ChangeKind::Flags),
        Ok(pb::ChangeKind::Expunged) => Ok(ChangeKind::Expunged),
        Ok(pb::ChangeKind::MailboxList) => Ok(ChangeKind::MailboxList),
        Ok(pb::ChangeKind::AccountRevoked) => Ok(ChangeKind::AccountRevoked),
        Ok(pb::ChangeKind::Unspecified) => Err(WireError::missing("change kind")),
        Err(_) => Err(WireError(format!("unknown change kind {raw}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Structures

impl From<&UidSet> for pb::UidSet {
    fn from(set: &UidSet) -> pb::UidSet {
        pb::UidSet {
            ranges: set
                .ranges()
                .iter()
                .map(|&(first, last)| pb::UidRange { first, last })
                .collect(),
        }
    }
}

impl From<pb::UidSet> for UidSet {
    fn from(set: pb::UidSet) -> UidSet {
        // from_ranges normalises order, overlaps and adjacency, so any ranges are acceptable.
        UidSet::from_ranges(set.ranges.into_iter().map(|r| (r.first, r.last)))
    }
}

/// A required UID set field.
pub fn uid_set_from_pb(set: Option<pb::UidSet>, field: &str) -> Result<UidSet, WireError> {
    required(set, field).map(UidSet::from)
}

impl From<InternalDate> for pb::InternalDate {
    fn from(d: InternalDate) -> pb::InternalDate {
        pb::InternalDate {
            unix_seconds: d.unix_seconds,
            tz_offset_minutes: d.tz_offset_minutes,
        }
    }
}

impl From<pb::InternalDate> for InternalDate {
    fn from(d: pb::InternalDate) -> InternalDate {
        InternalDate {
            unix_seconds: d.unix_seconds,
            tz_offset_minutes: d.tz_offset_minutes,
        }
    }
}

impl From<SearchIndex> for pb::SearchIndex {
    fn from(i: SearchIndex) -> pb::SearchIndex {
        pb::SearchIndex {
            headers: i
                .headers
                .into_iter()
                .map(|(name, value)| pb::HeaderField { name, value })
                .collect(),
            sent_date: i.sent_date.map(Into::into),
            body_text: i.body_text,
        }
    }
}

impl From<pb::SearchIndex> for SearchIndex {
    fn from(i: pb::SearchIndex) -> SearchIndex {
        SearchIndex {
            headers: i.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            sent_date: i.sent_date.map(Into::into),
            body_text: i.body_text,
        }
    }
}

impl From<NewMessage> for pb::NewMessage {
    fn from(m: NewMessage) -> pb::NewMessage {
        pb::NewMessage {
            blob: m.blob.0,
            size: m.size,
            internal_date: Some(m.internal_date.into()),
            flags: m.flags,
            summary: m.summary,
            index: Some(m.index.into()),
        }
    }
}

impl TryFrom<pb::NewMessage> for NewMessage {
    type Error = WireError;

    fn try_from(m: pb::NewMessage) -> Result<NewMessage, WireError> {
        if m.blob.is_empty() {
            return Err(WireError::missing("blob"));
        }
        Ok(NewMessage {
            blob: BlobKey(m.blob),
            size: m.size,
            internal_date: required(m.internal_date, "internal_date")?.into(),
            flags: m.flags,
            summary: m.summary,
            // An empty index is legitimate (a message with no headers or text); an absent one
            // means the same.
            index: m.index.map(Into::into).unwrap_or_default(),
        })
    }
}

impl From<MessageRecord> for pb::MessageRecord {
    fn from(m: MessageRecord) -> pb::MessageRecord {
        pb::MessageRecord {
            uid: m.uid.0,
            modseq: m.modseq.0,
            flags: m.flags,
            internal_date: Some(m.internal_date.into()),
            size: m.size,
            blob: m.blob.0,
            summary: m.summary,
        }
    }
}

impl TryFrom<pb::MessageRecord> for MessageRecord {
    type Error = WireError;

    fn try_from(m: pb::MessageRecord) -> Result<MessageRecord, WireError> {
        Ok(MessageRecord {
            uid: Uid(m.uid),
            modseq: ModSeq(m.modseq),
            flags: m.flags,
            internal_date: required(m.internal_date, "internal_date")?.into(),
            size: m.size,
            blob: BlobKey(m.blob),
            summary: m.summary,
        })
    }
}

impl From<IndexedMessage> for pb::IndexedMessage {
    fn from(m: IndexedMessage) -> pb::IndexedMessage {
        pb::IndexedMessage {
            uid: m.uid.0,
            size: m.size,
            internal_date: Some(m.internal_date.into()),
            index: Some(m.index.into()),
        }
    }
}

impl TryFrom<pb::IndexedMessage> for IndexedMessage {
    type Error = WireError;

    fn try_from(m: pb::IndexedMessage) -> Result<IndexedMessage, WireError> {
        Ok(IndexedMessage {
            uid: Uid(m.uid),
            size: m.size,
            internal_date: required(m.internal_date, "internal_date")?.into(),
            index: required(m.index, "index")?.into(),
        })
    }
}

pub fn records_from_pb(records: Vec<pb::MessageRecord>) -> Result<Vec<MessageRecord>, WireError> {
    records.into_iter().map(MessageRecord::try_from).collect()
}

impl From<ChangeEvent> for pb::ChangeEvent {
    fn from(e: ChangeEvent) -> pb::ChangeEvent {
        pb::ChangeEvent {
            user_id: e.user.0,
            mailbox_id: e.mailbox.0,
            modseq: e.modseq.0,
            kind: change_kind_to_pb(e.kind),
            published_unix_micros: e.published_unix_micros,
        }
    }
}

impl TryFrom<pb::ChangeEvent> for ChangeEvent {
    type Error = WireError;

    fn try_from(e: pb::ChangeEvent) -> Result<ChangeEvent, WireError> {
        Ok(ChangeEvent {
            user: user_id(e.user_id)?,
            mailbox: MailboxId(e.mailbox_id),
            modseq: ModSeq(e.modseq),
            kind: change_kind_from_pb(e.kind)?,
            published_unix_micros: e.published_unix_micros,
        })
    }
}

impl From<AppendResult> for pb::AppendResponse {
    fn from(r: AppendResult) -> pb::AppendResponse {
        pb::AppendResponse {
            uid_validity: r.uid_validity.0,
            uids: uids_to_pb(&r.uids),
            mailbox_id: r.mailbox.0,
        }
    }
}

impl From<pb::AppendResponse> for AppendResult {
    fn from(r: pb::AppendResponse) -> AppendResult {
        AppendResult {
            uid_validity: UidValidity(r.uid_validity),
            uids: uids_from_pb(r.uids),
            mailbox: MailboxId(r.mailbox_id),
        }
    }
}

impl From<StoreResult> for pb::StoreFlagsResponse {
    fn from(r: StoreResult) -> pb::StoreFlagsResponse {
        pb::StoreFlagsResponse {
            updated: r
                .updated
                .into_iter()
                .map(|(uid, modseq, flags)| pb::UpdatedFlags {
                    uid: uid.0,
                    modseq: modseq.0,
                    flags,
                })
                .collect(),
            modified: uids_to_pb(&r.modified),
            highest_modseq: r.highest_modseq.0,
        }
    }
}

impl From<pb::StoreFlagsResponse> for StoreResult {
    fn from(r: pb::StoreFlagsResponse) -> StoreResult {
        StoreResult {
            updated: r
                .updated
                .into_iter()
                .map(|u| (Uid(u.uid), ModSeq(u.modseq), u.flags))
                .collect(),
            modified: uids_from_pb(r.modified),
            highest_modseq: ModSeq(r.highest_modseq),
        }
    }
}

impl From<CopyResult> for pb::CopyMessagesResponse {
    fn from(r: CopyResult) -> pb::CopyMessagesResponse {
        pb::CopyMessagesResponse {
            uid_validity: r.uid_validity.0,
            mapping: r
                .mapping
                .into_iter()
                .map(|(source, destination)| pb::UidMapping {
                    source: source.0,
                    destination: destination.0,
                })
                .collect(),
            destination_mailbox_id: r.destination.0,
        }
    }
}

impl From<pb::CopyMessagesResponse> for CopyResult {
    fn from(r: pb::CopyMessagesResponse) -> CopyResult {
        CopyResult {
            uid_validity: UidValidity(r.uid_validity),
            mapping: r
                .mapping
                .into_iter()
                .map(|m| (Uid(m.source), Uid(m.destination)))
                .collect(),
            destination: MailboxId(r.destination_mailbox_id),
        }
    }
}

impl From<QuotaUsage> for pb::GetQuotaResponse {
    fn from(q: QuotaUsage) -> pb::GetQuotaResponse {
        pb::GetQuotaResponse {
            storage_limit_bytes: q.limits.storage_bytes,
            message_limit: q.limits.messages,
            storage_bytes: q.storage_bytes,
            messages: q.messages,
        }
    }
}

impl From<pb::GetQuotaResponse> for QuotaUsage {
    fn from(q: pb::GetQuotaResponse) -> QuotaUsage {
        QuotaUsage {
            limits: QuotaLimits {
                storage_bytes: q.storage_limit_bytes,
                messages: q.message_limit,
            },
            storage_bytes: q.storage_bytes,
            messages: q.messages,
        }
    }
}

impl From<Changes> for pb::ChangesSinceResponse {
    fn from(c: Changes) -> pb::ChangesSinceResponse {
        pb::ChangesSinceResponse {
            highest_modseq: c.highest_modseq.0,
            uid_next: c.uid_next.0,
            exists: c.exists,
            changed: c.changed.into_iter().map(Into::into).collect(),
            vanished: uids_to_pb(&c.vanished),
            mailbox_gone: c.mailbox_gone,
            log_trimmed: c.log_trimmed,
        }
    }
}

impl TryFrom<pb::ChangesSinceResponse> for Changes {
    type Error = WireError;

    fn try_from(c: pb::ChangesSinceResponse) -> Result<Changes, WireError> {
        Ok(Changes {
            highest_modseq: ModSeq(c.highest_modseq),
            uid_next: Uid(c.uid_next),
            exists: c.exists,
            changed: records_from_pb(c.changed)?,
            vanished: uids_from_pb(c.vanished),
            mailbox_gone: c.mailbox_gone,
            log_trimmed: c.log_trimmed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn all_errors() -> Vec<MetaError> {
        vec![
            MetaError::NotFound("mailbox Foo".into()),
            MetaError::AlreadyExists("mailbox Bar".into()),
            MetaError::Invalid("cannot delete INBOX".into()),
            MetaError::OverQuota("storage".into()),
            MetaError::Limit("keywords".into()),
            MetaError::AuthenticationFailed,
            MetaError::Unavailable("redis down".into()),
            MetaError::Internal("corrupt record".into()),
        ]
    }

    #[test]
    fn every_error_round_trips_through_a_status() {
        let codes = [
            Code::NotFound,
            Code::AlreadyExists,
            Code::InvalidArgument,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Unauthenticated,
            Code::Unavailable,
            Code::Internal,
        ];
        for (err, code) in all_errors().into_iter().zip(codes) {
            let status = status_from_meta(err.clone());
            assert_eq!(status.code(), code, "{err:?}");
            assert_eq!(meta_from_status(&status), err);
        }
    }

    #[test]
    fn statuses_without_marker_are_classified_by_code() {
        let s = Status::new(Code::Unavailable, "connection refused");
        assert!(matches!(meta_from_status(&s), MetaError::Unavailable(_)));
        // h2 and hyper failures must not look like a store bug.
        let s = Status::new(Code::Internal, "h2 protocol error");
        assert!(matches!(meta_from_status(&s), MetaError::Unavailable(_)));
        let s = Status::new(Code::Unknown, "transport error");
        assert!(matches!(meta_from_status(&s), MetaError::Unavailable(_)));
        let s = Status::new(Code::Cancelled, "timeout expired");
        assert!(meta_from_status(&s).is_retryable());
        // Without the marker, ResourceExhausted is flow control or a proxy, not a quota.
        let s = Status::new(Code::ResourceExhausted, "enhance your calm");
        assert!(matches!(meta_from_status(&s), MetaError::Unavailable(_)));
        // A refused grpc secret is this node's misconfiguration, not a user's failed login.
        let s = Status::new(Code::Unauthenticated, "no bearer");
        assert!(matches!(meta_from_status(&s), MetaError::Internal(_)));
        let s = Status::new(Code::OutOfRange, "decoded message length too large");
        assert!(matches!(meta_from_status(&s), MetaError::Internal(_)));
        let s = Status::new(Code::Unimplemented, "no such method");
        assert!(matches!(meta_from_status(&s), MetaError::Internal(_)));
        let s = Status::new(Code::NotFound, "x");
        assert_eq!(meta_from_status(&s), MetaError::NotFound("x".into()));
    }

    #[test]
    fn wire_errors_become_invalid_argument() {
        let status = Status::from(WireError::missing("user_id"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(matches!(meta_from_status(&status), MetaError::Invalid(_)));
    }

    #[test]
    fn zero_user_id_is_refused() {
        assert!(user_id(0).is_err());
        assert_eq!(user_id(7), Ok(UserId(7)));
    }

    #[test]
    fn enums_reject_unknown_values() {
        assert!(special_use_from_pb(99).is_err());
        assert_eq!(special_use_from_pb(0), Ok(None));
        assert!(flag_op_from_pb(0).is_err());
        assert!(flag_op_from_pb(17).is_err());
        assert!(change_kind_from_pb(0).is_err());
        for op in [FlagOp::Add, FlagOp::Remove, FlagOp::Replace] {
            assert_eq!(flag_op_from_pb(flag_op_to_pb(op)), Ok(op));
        }
        for su in [
            SpecialUse::All,
            SpecialUse::Archive,
            SpecialUse::Drafts,
            SpecialUse::Flagged,
            SpecialUse::Junk,
            SpecialUse::Sent,
            SpecialUse::Trash,
        ] {
            assert_eq!(
                special_use_from_pb(special_use_to_pb(Some(su))),
                Ok(Some(su))
            );
        }
    }

    #[test]
    fn messages_round_trip() {
        let msg = NewMessage {
            blob: BlobKey("u/1/abc".into()),
            size: 1234,
            internal_date: InternalDate {
                unix_seconds: -5,
                tz_offset_minutes: -480,
            },
            flags: vec!["\\Seen".into(), "$Label".into()],
            summary: Bytes::from_static(b"\x00\x01summary"),
            index: SearchIndex {
                headers: vec![("Subject".into(), "héllo".into())],
                sent_date: Some(InternalDate {
                    unix_seconds: 1,
                    tz_offset_minutes: 540,
                }),
                body_text: "body".into(),
            },
        };
        assert_eq!(
            NewMessage::try_from(pb::NewMessage::from(msg.clone())),
            Ok(msg)
        );
        let missing_date = pb::NewMessage {
            blob: "u/1/x".into(),
            ..Default::default()
        };
        assert!(NewMessage::try_from(missing_date).is_err());

        for summary in [None, Some(Bytes::new()), Some(Bytes::from_static(b"s"))] {
            let rec = MessageRecord {
                uid: Uid(7),
                modseq: ModSeq(9),
                flags: vec![],
                internal_date: InternalDate {
                    unix_seconds: 3,
                    tz_offset_minutes: 0,
                },
                size: 5,
                blob: BlobKey("u/1/y".into()),
                summary,
            };
            assert_eq!(
                MessageRecord::try_from(pb::MessageRecord::from(rec.clone())),
                Ok(rec)
            );
        }
    }
}

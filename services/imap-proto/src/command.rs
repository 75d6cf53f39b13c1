//! The command AST: what the receiver produces from wire bytes (RFC 3501 §6, RFC 9051 §6 and the
//! extensions Yubin implements). Strings that are mailbox names are kept as the raw bytes the
//! client sent; decoding (modified UTF-7 in rev1, UTF-8 in rev2) is the session's business because
//! it depends on ENABLE state.

use bytes::Bytes;

/// A tagged command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    pub body: CommandBody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody {
    // Any state (RFC 3501 §6.1)
    Capability,
    Noop,
    Logout,
    /// RFC 2971.
    Id(Option<Vec<(String, Option<String>)>>),

    // Not authenticated (RFC 3501 §6.2)
    StartTls,
    /// `initial_response` is the SASL-IR argument (RFC 4959) still base64-encoded; `=` means an
    /// empty response.
    Authenticate {
        mechanism: String,
        initial_response: Option<String>,
    },
    Login {
        username: Vec<u8>,
        password: Vec<u8>,
    },

    // Authenticated (RFC 3501 §6.3)
    /// RFC 5161.
    Enable(Vec<String>),
    /// RFC 2342.
    Namespace,
    Select {
        mailbox: Vec<u8>,
        params: SelectParams,
    },
    Examine {
        mailbox: Vec<u8>,
        params: SelectParams,
    },
    Create {
        mailbox: Vec<u8>,
        /// CREATE-SPECIAL-USE (RFC 6154 §3) attributes, e.g. `\Sent`.
        special_use: Vec<String>,
    },
    Delete {
        mailbox: Vec<u8>,
    },
    Rename {
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Subscribe {
        mailbox: Vec<u8>,
    },
    Unsubscribe {
        mailbox: Vec<u8>,
    },
    /// LIST with LIST-EXTENDED (RFC 5258) options; a basic LIST has empty option lists and one
    /// pattern.
    List {
        reference: Vec<u8>,
        patterns: Vec<Vec<u8>>,
        selection: Vec<ListSelectOption>,
        returns: Vec<ListReturnOption>,
    },
    Lsub {
        reference: Vec<u8>,
        pattern: Vec<u8>,
    },
    Status {
        mailbox: Vec<u8>,
        items: Vec<StatusItem>,
    },
    /// One or more messages (MULTIAPPEND shape; one message for plain APPEND).
    Append {
        mailbox: Vec<u8>,
        messages: Vec<AppendMessage>,
    },
    Idle,

    // Selected (RFC 3501 §6.4)
    Check,
    Close,
    /// RFC 3691.
    Unselect,
    /// `uids` is Some for UID EXPUNGE (RFC 4315 §2.1).
    Expunge {
        uids: Option<SequenceSet>,
    },
    Search {
        uid: bool,
        charset: Option<String>,
        /// ESEARCH return options (RFC 4731); `None` when no RETURN was given.
        returns: Option<Vec<SearchReturnOption>>,
        /// The criteria; several top-level keys are ANDed, so this is usually `SearchKey::And`.
        criteria: SearchKey,
    },
    /// SORT / UID SORT (RFC 5256 §3); `returns` is the ESORT `RETURN` list (RFC 5267 §3), `None`
    /// without one.
    Sort {
        uid: bool,
        criteria: Vec<SortCriterion>,
        charset: String,
        returns: Option<Vec<SearchReturnOption>>,
        search: SearchKey,
    },
    /// THREAD / UID THREAD (RFC 5256 §3).
    Thread {
        uid: bool,
        algorithm: ThreadAlgorithm,
        charset: String,
        search: SearchKey,
    },
    Fetch {
        uid: bool,
        set: SequenceSet,
        items: FetchItems,
        /// CHANGEDSINCE (RFC 7162 §3.1.4).
        changed_since: Option<u64>,
        /// VANISHED modifier of UID FETCH (RFC 7162 §3.2.6).
        vanished: bool,
    },
    Store {
        uid: bool,
        set: SequenceSet,
        mode: StoreMode,
        silent: bool,
        flags: Vec<String>,
        /// UNCHANGEDSINCE (RFC 7162 §3.1.3).
        unchanged_since: Option<u64>,
    },
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: Vec<u8>,
    },
    /// RFC 6851.
    Move {
        uid: bool,
        set: SequenceSet,
        mailbox: Vec<u8>,
    },
    /// REPLACE / UID REPLACE (RFC 8508 §3): `target` is one sequence number or UID.
    Replace {
        uid: bool,
        target: u32,
        mailbox: Vec<u8>,
        message: AppendMessage,
    },

    // QUOTA (RFC 9208 §4), authenticated state
    GetQuota {
        root: Vec<u8>,
    },
    GetQuotaRoot {
        mailbox: Vec<u8>,
    },
    /// `SETQUOTA root (resource limit ...)`; resource names upper-cased.
    SetQuota {
        root: Vec<u8>,
        limits: Vec<(String, u64)>,
    },

    /// `COMPRESS mechanism` (RFC 4978 §3); the mechanism name upper-cased.
    Compress {
        mechanism: String,
    },
    /// GETMETADATA (RFC 5464 §4.2). `mailbox` is empty for server entries; entry names are
    /// validated (RFC 5464 §3.2) and lower-cased (they are case-insensitive).
    GetMetadata {
        mailbox: Vec<u8>,
        options: MetadataOptions,
        entries: Vec<String>,
    },
    /// SETMETADATA (RFC 5464 §4.3): each entry with its new value, `None` (NIL) removing it.
    SetMetadata {
        mailbox: Vec<u8>,
        entries: Vec<(String, Option<Vec<u8>>)>,
    },
}

impl CommandBody {
    /// The command's name as written on the wire, upper case, with `UID ` for UID forms; used for
    /// logs, metrics and response texts.
    pub fn name(&self) -> &'static str {
        match self {
            CommandBody::Capability => "CAPABILITY",
            CommandBody::Noop => "NOOP",
            CommandBody::Logout => "LOGOUT",
            CommandBody::Id(_) => "ID",
            CommandBody::StartTls => "STARTTLS",
            CommandBody::Authenticate { .. } => "AUTHENTICATE",
            CommandBody::Login { .. } => "LOGIN",
            CommandBody::Enable(_) => "ENABLE",
            CommandBody::Namespace => "NAMESPACE",
            CommandBody::Select { .. } => "SELECT",
            CommandBody::Examine { .. } => "EXAMINE",
            CommandBody::Create { .. } => "CREATE",
            CommandBody::Delete { .. } => "DELETE",
            CommandBody::Rename { .. } => "RENAME",
            CommandBody::Subscribe { .. } => "SUBSCRIBE",
            CommandBody::Unsubscribe { .. } => "UNSUBSCRIBE",
            CommandBody::List { .. } => "LIST",
            CommandBody::Lsub { .. } => "LSUB",
            CommandBody::Status { .. } => "STATUS",
            CommandBody::Append { .. } => "APPEND",
            CommandBody::Idle => "IDLE",
            CommandBody::Check => "CHECK",
            CommandBody::Close => "CLOSE",
            CommandBody::Unselect => "UNSELECT",
            CommandBody::Expunge { uids: None } => "EXPUNGE",
            CommandBody::Expunge { uids: Some(_) } => "UID EXPUNGE",
            CommandBody::Search { uid: false, .. } => "SEARCH",
            CommandBody::Search { uid: true, .. } => "UID SEARCH",
            CommandBody::Sort { uid: false, .. } => "SORT",
            CommandBody::Sort { uid: true, .. } => "UID SORT",
            CommandBody::Thread { uid: false, .. } => "THREAD",
            CommandBody::Thread { uid: true, .. } => "UID THREAD",
            CommandBody::Fetch { uid: false, .. } => "FETCH",
            CommandBody::Fetch { uid: true, .. } => "UID FETCH",
            CommandBody::Store { uid: false, .. } => "STORE",
            CommandBody::Store { uid: true, .. } => "UID STORE",
            CommandBody::Copy { uid: false, .. } => "COPY",
            CommandBody::Copy { uid: true, .. } => "UID COPY",
            CommandBody::Move { uid: false, .. } => "MOVE",
            CommandBody::Move { uid: true, .. } => "UID MOVE",
            CommandBody::Replace { uid: false, .. } => "REPLACE",
            CommandBody::Replace { uid: true, .. } => "UID REPLACE",
            CommandBody::GetQuota { .. } => "GETQUOTA",
            CommandBody::GetQuotaRoot { .. } => "GETQUOTAROOT",
            CommandBody::SetQuota { .. } => "SETQUOTA",
            CommandBody::Compress { .. } => "COMPRESS",
            CommandBody::GetMetadata { .. } => "GETMETADATA",
            CommandBody::SetMetadata { .. } => "SETMETADATA",
        }
    }
}

/// GETMETADATA options (RFC 5464 §4.2.1, §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetadataOptions {
    /// MAXSIZE: values longer than this are left out (and reported with LONGENTRIES).
    pub max_size: Option<u64>,
    pub depth: MetadataDepth,
}

/// GETMETADATA DEPTH (RFC 5464 §4.2.2): which entries below each requested one are returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetadataDepth {
    /// `0`: only the entry itself (the default).
    #[default]
    Zero,
    /// `1`: the entry and its immediate children.
    One,
    /// `infinity`: the entry and everything below it.
    Infinity,
}

/// A SORT key (RFC 5256 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
}

/// `sort-criterion = ["REVERSE" SP] sort-key` (RFC 5256 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    pub key: SortKey,
    pub reverse: bool,
}

/// A THREAD algorithm (RFC 5256 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
}

/// SELECT/EXAMINE parameters (RFC 7162 §3.1.8 CONDSTORE, §3.2.5 QRESYNC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectParams {
    pub condstore: bool,
    pub qresync: Option<QresyncParams>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QresyncParams {
    pub uid_validity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
    /// (known sequence numbers, corresponding UIDs).
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

/// One message of an APPEND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    pub flags: Vec<String>,
    /// date-time as sent (RFC 3501 §9 `date-time`), already parsed.
    pub internal_date: Option<DateTime>,
    /// The literal's exact bytes, or where the caller put them.
    pub message: AppendBody,
    /// Sent as literal8 `~{n}` (RFC 3516 BINARY).
    pub binary: bool,
}

/// Where the octets of an APPEND message literal are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendBody {
    /// Held by the receiver (literals up to `Limits::max_buffered_literal`).
    Inline(Bytes),
    /// Larger: the receiver handed the octets to the caller as they arrived
    /// ([`crate::Received::LiteralStream`] then [`crate::Receiver::take_literal_chunk`]) instead
    /// of buffering them. `index` numbers the streamed literals of this command from 0, in the
    /// order they were streamed, so the caller can match what it spooled.
    Streamed { size: u64, index: usize },
    /// Not a literal: an APPEND message assembled by CATENATE (RFC 4469 §5) from these parts,
    /// in order. Only ever the message of an APPEND; its TEXT literals are themselves inline or
    /// streamed.
    Catenate(Vec<CatenatePart>),
}

/// One `cat-part` of CATENATE (RFC 4469 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatenatePart {
    /// `"TEXT" SP literal`: octets sent by the client (never itself a `Catenate`).
    Text(AppendBody),
    /// `"URL" SP astring`: an IMAP URL (RFC 5092) naming a message or a section of one, as sent.
    Url(Vec<u8>),
}

impl AppendBody {
    /// Length of the literal in octets; for `Catenate`, of its TEXT parts only (the URL parts'
    /// length is known once they are resolved).
    pub fn len(&self) -> u64 {
        match self {
            AppendBody::Inline(b) => b.len() as u64,
            AppendBody::Streamed { size, .. } => *size,
            AppendBody::Catenate(parts) => parts
                .iter()
                .map(|p| match p {
                    CatenatePart::Text(t) => t.len(),
                    CatenatePart::Url(_) => 0,
                })
                .sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A `date-time` (RFC 3501 §9): `"dd-Mon-yyyy hh:mm:ss +zzzz"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// Seconds since the Unix epoch, UTC.
    pub unix_seconds: i64,
    /// Zone offset in minutes east of UTC.
    pub tz_offset_minutes: i32,
}

/// A `date` (RFC 3501 §9) as days since 1970-01-01.
pub type Date = i32;

/// A sequence set (RFC 3501 §9 `sequence-set`, RFC 5182 `$`). `u32::MAX` never appears: `*` is
/// kept symbolic so the session resolves it against its own view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceSet {
    /// Comma-separated ranges; a single number is a range with equal ends.
    Ranges(Vec<(SeqBound, SeqBound)>),
    /// `$`: the result of the last SEARCH with SAVE (RFC 5182).
    Saved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqBound {
    Number(u32),
    /// `*`: the largest number in use.
    Star,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
    HighestModSeq,
    AppendLimit,
    MailboxId,
    /// RFC 9208 §4.2.
    DeletedStorage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListSelectOption {
    Subscribed,
    Remote,
    RecursiveMatch,
    SpecialUse,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListReturnOption {
    Subscribed,
    Children,
    SpecialUse,
    /// LIST-STATUS (RFC 5819).
    Status(Vec<StatusItem>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturnOption {
    Min,
    Max,
    All,
    Count,
    Save,
}

/// FETCH items: a macro or an explicit list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItems {
    /// `ALL` = FLAGS INTERNALDATE RFC822.SIZE ENVELOPE.
    All,
    /// `FAST` = FLAGS INTERNALDATE RFC822.SIZE.
    Fast,
    /// `FULL` = ALL plus BODY.
    Full,
    List(Vec<FetchAttribute>),
}

impl FetchItems {
    /// The macro expanded into attributes (RFC 3501 §6.4.5).
    pub fn expand(&self) -> Vec<FetchAttribute> {
        use FetchAttribute::*;
        match self {
            FetchItems::All => vec![Flags, InternalDate, Rfc822Size, Envelope],
            FetchItems::Fast => vec![Flags, InternalDate, Rfc822Size],
            FetchItems::Full => vec![Flags, InternalDate, Rfc822Size, Envelope, Body],
            FetchItems::List(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FetchAttribute {
    Envelope,
    Flags,
    InternalDate,
    Rfc822Size,
    Uid,
    /// `BODY` without section: the non-extensible BODYSTRUCTURE.
    Body,
    BodyStructure,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    /// `BODY[section]<partial>` or `BODY.PEEK[...]` (peek does not set `\Seen`).
    BodySection {
        peek: bool,
        section: Section,
        partial: Option<(u64, u64)>,
    },
    /// `BINARY[part]<partial>` / `BINARY.PEEK` (RFC 3516).
    Binary {
        peek: bool,
        part: Vec<u32>,
        partial: Option<(u64, u64)>,
    },
    /// `BINARY.SIZE[part]`.
    BinarySize {
        part: Vec<u32>,
    },
    /// RFC 7162.
    ModSeq,
    /// RFC 8474.
    EmailId,
    ThreadId,
    /// RFC 8514.
    SaveDate,
    /// `PREVIEW` / `PREVIEW (LAZY)` (RFC 8970 §3.1, §4): a short plain-text preview; with
    /// `lazy` the server may answer NIL when a preview is not readily available.
    Preview {
        lazy: bool,
    },
}

/// A `section` (RFC 3501 §6.4.5): a part path plus what of it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Section {
    /// Part numbers, e.g. `[1, 2]` for `1.2`; empty for the whole message.
    pub part: Vec<u32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SectionText {
    Header,
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    /// Only valid with a non-empty part path.
    Mime,
}

/// SEARCH keys (RFC 3501 §6.4.4, RFC 9051 §6.4.4, RFC 7162 MODSEQ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    Answered,
    Bcc(String),
    Before(Date),
    Body(String),
    Cc(String),
    Deleted,
    Draft,
    Flagged,
    From(String),
    Header(String, String),
    Keyword(String),
    Larger(u64),
    New,
    Not(Box<SearchKey>),
    Old,
    On(Date),
    Or(Box<SearchKey>, Box<SearchKey>),
    Recent,
    Seen,
    SentBefore(Date),
    SentOn(Date),
    SentSince(Date),
    Since(Date),
    Smaller(u64),
    Subject(String),
    Text(String),
    To(String),
    Uid(SequenceSet),
    Unanswered,
    Undeleted,
    Undraft,
    Unflagged,
    Unkeyword(String),
    Unseen,
    /// A bare sequence set.
    SequenceSet(SequenceSet),
    /// A parenthesised list, or the implicit AND of several top-level keys.
    And(Vec<SearchKey>),
    /// `MODSEQ [entry type] n`; only the number matters to Yubin.
    ModSeq(u64),
}

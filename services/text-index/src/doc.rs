//! What one message becomes in the index: its schema, its terms and its stored text.
//!
//! Every message is two tantivy documents sharing `mbox` and `uid`: a *head* (header terms,
//! sent day, stored header fields) and a *body* (body terms, stored body text). Separate
//! documents keep the stored header fields in their own store blocks, so SORT, THREAD and
//! PREVIEW projections without body text never decompress bodies; heads of a batch are added
//! before its bodies for that reason.
//!
//! Terms are made here ([`Grams`], registered with each index as a tantivy tokenizer), so the
//! lower-casing is exactly [`crate::leaf_matches`]'s (`str::to_lowercase` of whole values, done
//! before the value reaches the tokenizer) and every position is under our control:
//!
//! - each value is lower-cased whole, then at every character position `i` a term of the (up to)
//!   three characters starting there is emitted at position `i`: trigrams, then a bigram and a
//!   unigram at the value's end. Every substring of one or two characters is the prefix of some
//!   term, and a substring of three or more is a run of trigrams at consecutive positions;
//! - values of one field are laid out one after the other, positions counting characters: a
//!   trigram at position `p` of one value and one at `p + 1` are always in the same value (a
//!   value's last trigram starts three before its end, the next value's first at its end), so
//!   a phrase never crosses from one value into the next; one unused position between values
//!   keeps that true even for terms that are not trigrams;
//! - header values are indexed in `hval` behind a prefix naming their field (`name_prefix`),
//!   whole `name: value` lines in `line` (TEXT), the body in `body`.
//!
//! Each value is its own tantivy value of the field, so tantivy lays the values out: a value's
//! tokens at its positions from where the last one ended, plus one unused position
//! (`POSITION_GAP` in tantivy's postings writer), exactly the layout above. Indexes made before
//! the tokenizer existed (their schema names tantivy's `raw` tokenizer on these fields) get the
//! same terms handed over pre-tokenized instead ([`Fields::tokenized_by_index`]): tantivy
//! stores a pre-tokenized value as JSON in the document and parses it back while indexing,
//! which was over a quarter of `yubin dev`'s CPU under a mail-reading load.

use serde::{Deserialize, Serialize};
use tantivy::schema::{
    BytesOptions, Field, FieldType, INDEXED, IndexRecordOption, NumericOptions, STORED, Schema,
    TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{PreTokenizedString, Token, TokenStream, Tokenizer};
use tantivy::{TantivyDocument, Term};
use yubin_meta_api::{InternalDate, MailboxId, SearchIndex, Uid};

use crate::semantics::day_number;

/// Longest header-name key, in bytes, that terms carry in full; a longer name is cut (and marked
/// cut), and answers for it are verified against the stored fields.
pub(crate) const MAX_NAME_KEY_BYTES: usize = 64;

/// The fields of the schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    /// `mbox ‖ uid ‖ part`, big-endian: the document's identity, for deletes and lookups.
    pub key: Field,
    pub mbox: Field,
    pub uid: Field,
    /// Header values' terms, each behind its field's name prefix (HEADER).
    pub hval: Field,
    /// Header field names present, as their `hval` prefix (HEADER with an empty string).
    pub hname: Field,
    /// Terms of whole `name: value` lines (TEXT).
    pub line: Field,
    pub body: Field,
    /// The `Date:` header's day number (SENTBEFORE/SENTON/SENTSINCE).
    pub sent: Field,
    /// The stored header fields and sent date ([`StoredHead`] as JSON), on head documents.
    pub head_src: Field,
    /// The stored body text, on body documents.
    pub body_src: Field,
    /// Whether the index's schema has [`Grams`] make the gram fields' terms (indexes made by
    /// this release); otherwise they are handed over pre-tokenized.
    pub tokenized_by_index: bool,
}

/// The tokenizer name of `line` and `body`.
pub(crate) const GRAMS: &str = "yubin_grams";
/// The tokenizer name of `hval`, whose values start with their field's [`name_prefix`].
pub(crate) const PREFIXED_GRAMS: &str = "yubin_prefixed_grams";

/// Registers the gram tokenizers with `index` (tantivy keeps tokenizers by name, outside the
/// files; every opened index needs them before it is written).
pub(crate) fn register_tokenizers(index: &tantivy::Index) {
    let tokenizers = index.tokenizers();
    tokenizers.register(GRAMS, Grams { prefixed: false });
    tokenizers.register(PREFIXED_GRAMS, Grams { prefixed: true });
}

/// The terms of one lower-cased value (see the module doc): at every character position the (up
/// to) three characters starting there, behind the value's field-name prefix when `prefixed`
/// (the prefix is self-delimiting: [`name_prefix`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grams {
    prefixed: bool,
}

pub(crate) struct GramStream<'a> {
    prefix: &'a str,
    value: &'a str,
    /// Byte offsets of the value's characters.
    starts: Vec<usize>,
    next: usize,
    token: Token,
}

impl<'a> GramStream<'a> {
    fn new(prefix: &'a str, value: &'a str) -> GramStream<'a> {
        GramStream {
            prefix,
            value,
            starts: value.char_indices().map(|(i, _)| i).collect(),
            next: 0,
            token: Token::default(),
        }
    }

    /// Characters in the value: the positions its terms take.
    fn chars(&self) -> usize {
        self.starts.len()
    }
}

impl Tokenizer for Grams {
    type TokenStream<'a> = GramStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> GramStream<'a> {
        let (prefix, value) = if self.prefixed {
            split_prefix(text)
        } else {
            ("", text)
        };
        GramStream::new(prefix, value)
    }
}

impl TokenStream for GramStream<'_> {
    fn advance(&mut self) -> bool {
        let n = self.next;
        let Some(&start) = self.starts.get(n) else {
            return false;
        };
        let end = self.starts.get(n + 3).copied().unwrap_or(self.value.len());
        let t = &mut self.token;
        t.text.clear();
        t.text.push_str(self.prefix);
        t.text.push_str(&self.value[start..end]);
        t.position = n;
        t.offset_from = start;
        t.offset_to = end;
        t.position_length = 1;
        self.next += 1;
        true
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

/// Splits an `hval` value into its [`name_prefix`] and the value: an optional `z`, two hex
/// digits giving the key's byte length, the key. A text not so made (never written here) is all
/// value.
fn split_prefix(text: &str) -> (&str, &str) {
    let skip = usize::from(text.starts_with('z'));
    let key_len = text
        .get(skip..skip + 2)
        .and_then(|hex| usize::from_str_radix(hex, 16).ok());
    match key_len {
        Some(len) if text.is_char_boundary(skip + 2 + len) => text.split_at(skip + 2 + len),
        _ => ("", text),
    }
}

/// The tokenizer name a schema gives `field`, if it is indexed text.
fn tokenizer_of(schema: &Schema, field: Field) -> Option<String> {
    match schema.get_field_entry(field).field_type() {
        FieldType::Str(options) => options
            .get_indexing_options()
            .map(|o| o.tokenizer().to_string()),
        _ => None,
    }
}

/// Which of a message's two documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Head = 0,
    Body = 1,
}

impl Fields {
    pub(crate) fn schema() -> (Schema, Fields) {
        Fields::schema_tokenized_by(GRAMS, PREFIXED_GRAMS)
    }

    /// The schema with the gram fields' tokenizers named: [`GRAMS`] and [`PREFIXED_GRAMS`], or
    /// `raw` for both as indexes made before [`Grams`] have it.
    pub(crate) fn schema_tokenized_by(grams: &str, prefixed_grams: &str) -> (Schema, Fields) {
        let mut b = Schema::builder();
        let grams_by = |tokenizer: &str| {
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(tokenizer)
                    .set_fieldnorms(false)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            )
        };
        let grams = grams_by(grams);
        let names = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_fieldnorms(false)
                .set_index_option(IndexRecordOption::Basic),
        );
        let fields = Fields {
            key: b.add_bytes_field("key", BytesOptions::default().set_indexed()),
            mbox: b.add_u64_field("mbox", NumericOptions::default().set_indexed().set_fast()),
            uid: b.add_u64_field("uid", NumericOptions::default().set_fast()),
            hval: b.add_text_field("hval", grams_by(prefixed_grams)),
            hname: b.add_text_field("hname", names),
            line: b.add_text_field("line", grams.clone()),
            body: b.add_text_field("body", grams),
            sent: b.add_i64_field("sent", INDEXED),
            head_src: b.add_bytes_field("head_src", STORED),
            body_src: b.add_text_field("body_src", STORED),
            tokenized_by_index: prefixed_grams == PREFIXED_GRAMS,
        };
        (b.build(), fields)
    }

    pub(crate) fn from_schema(schema: &Schema) -> tantivy::Result<Fields> {
        let f = |name: &str| schema.get_field(name);
        let hval = f("hval")?;
        Ok(Fields {
            tokenized_by_index: tokenizer_of(schema, hval).as_deref() == Some(PREFIXED_GRAMS),
            key: f("key")?,
            mbox: f("mbox")?,
            uid: f("uid")?,
            hval: f("hval")?,
            hname: f("hname")?,
            line: f("line")?,
            body: f("body")?,
            sent: f("sent")?,
            head_src: f("head_src")?,
            body_src: f("body_src")?,
        })
    }

    pub(crate) fn key_term(&self, mailbox: MailboxId, uid: Uid, part: Part) -> Term {
        Term::from_field_bytes(self.key, &doc_key(mailbox, uid, part))
    }
}

pub(crate) fn doc_key(mailbox: MailboxId, uid: Uid, part: Part) -> [u8; 13] {
    let mut k = [0u8; 13];
    k[..8].copy_from_slice(&mailbox.0.to_be_bytes());
    k[8..12].copy_from_slice(&uid.0.to_be_bytes());
    k[12] = part as u8;
    k
}

/// The stored form of a head document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredHead {
    pub headers: Vec<(String, String)>,
    pub sent_date: Option<InternalDate>,
}

/// A header name as terms carry it: ASCII-lower-cased (names compare ASCII-case-insensitively),
/// and whether it had to be cut to [`MAX_NAME_KEY_BYTES`].
pub(crate) fn name_key(name: &str) -> (String, bool) {
    let lower = name.to_ascii_lowercase();
    if lower.len() <= MAX_NAME_KEY_BYTES {
        return (lower, false);
    }
    let mut cut = MAX_NAME_KEY_BYTES;
    while !lower.is_char_boundary(cut) {
        cut -= 1;
    }
    (lower[..cut].to_string(), true)
}

/// The prefix of `hval` terms of field `name`: the key's byte length in two hex digits, then the
/// key, so no prefix is a prefix of another field's terms; a cut key is marked with a leading
/// `z` (never a hex digit), so a cut long name never shares terms with a short one.
pub(crate) fn name_prefix(name: &str) -> (String, bool) {
    let (key, cut) = name_key(name);
    let marker = if cut { "z" } else { "" };
    (format!("{marker}{:02x}{key}", key.len()), cut)
}

/// Appends the terms of one (already lower-cased) value at positions from `*next`, then leaves
/// `*next` one unused position past the value, as tantivy lays out values given to
/// [`Grams`].
fn push_value(lowered: &str, prefix: &str, next: &mut usize, out: &mut Vec<Token>) {
    let mut stream = GramStream::new(prefix, lowered);
    while stream.advance() {
        let mut token = stream.token().clone();
        token.position += *next;
        token.offset_from = 0;
        token.offset_to = 0;
        out.push(token);
    }
    *next += stream.chars() + 1;
}

fn pre_tokenized(tokens: Vec<Token>) -> PreTokenizedString {
    PreTokenizedString {
        text: String::new(),
        tokens,
    }
}

/// The two documents of a message.
pub(crate) fn documents(
    f: &Fields,
    mailbox: MailboxId,
    uid: Uid,
    ix: &SearchIndex,
) -> (TantivyDocument, TantivyDocument) {
    if !f.tokenized_by_index {
        return pre_tokenized_documents(f, mailbox, uid, ix);
    }
    let mut head = new_document(f, mailbox, uid, Part::Head);
    for (name, value) in &ix.headers {
        let (prefix, _) = name_prefix(name);
        let value_lower = value.to_lowercase();
        head.add_text(f.hval, format!("{prefix}{value_lower}"));
        let name_lower = name.to_lowercase();
        let line_lower = format!("{name}: {value}").to_lowercase();
        // As in the pre-tokenized form below: the parts on their own when lower-casing the
        // whole line does not give the lower-cased parts.
        if line_lower != format!("{name_lower}: {value_lower}") {
            head.add_text(f.line, name_lower);
            head.add_text(f.line, value_lower);
        }
        head.add_text(f.line, line_lower);
        head.add_text(f.hname, prefix);
    }
    finish_head(f, &mut head, ix);
    let mut body = new_document(f, mailbox, uid, Part::Body);
    body.add_text(f.body, ix.body_text.to_lowercase());
    body.add_text(f.body_src, &ix.body_text);
    (head, body)
}

fn new_document(f: &Fields, mailbox: MailboxId, uid: Uid, part: Part) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_bytes(f.key, &doc_key(mailbox, uid, part));
    doc.add_u64(f.mbox, mailbox.0);
    doc.add_u64(f.uid, u64::from(uid.0));
    doc
}

/// The sent day and the stored header fields of a head document.
fn finish_head(f: &Fields, head: &mut TantivyDocument, ix: &SearchIndex) {
    if let Some(date) = ix.sent_date {
        head.add_i64(f.sent, i64::from(day_number(date)));
    }
    let stored = StoredHead {
        headers: ix.headers.clone(),
        sent_date: ix.sent_date,
    };
    head.add_bytes(
        f.head_src,
        &serde_json::to_vec(&stored).expect("header fields serialize"),
    );
}

/// [`documents`] for an index whose schema predates [`Grams`]: the same terms at the same
/// positions, handed over pre-tokenized.
fn pre_tokenized_documents(
    f: &Fields,
    mailbox: MailboxId,
    uid: Uid,
    ix: &SearchIndex,
) -> (TantivyDocument, TantivyDocument) {
    let mut head = new_document(f, mailbox, uid, Part::Head);
    let (mut hval, mut line, mut names) = (Vec::new(), Vec::new(), Vec::new());
    let (mut hval_next, mut line_next) = (0, 0);
    for (n, (name, value)) in ix.headers.iter().enumerate() {
        let (prefix, _) = name_prefix(name);
        let value_lower = value.to_lowercase();
        push_value(&value_lower, &prefix, &mut hval_next, &mut hval);
        let name_lower = name.to_lowercase();
        let line_lower = format!("{name}: {value}").to_lowercase();
        // TEXT looks in the name, the value and the whole line; the lower-cased line holds both
        // lower-cased parts unless lower-casing depends on context across `": "`, which it does
        // not for Unicode's only contextual rule (final sigma: the space ends the word), but the
        // parts are indexed on their own should that ever not hold.
        if line_lower != format!("{name_lower}: {value_lower}") {
            push_value(&name_lower, "", &mut line_next, &mut line);
            push_value(&value_lower, "", &mut line_next, &mut line);
        }
        push_value(&line_lower, "", &mut line_next, &mut line);
        names.push(Token {
            offset_from: 0,
            offset_to: 0,
            position: n,
            text: prefix.clone(),
            position_length: 1,
        });
    }
    head.add_pre_tokenized_text(f.hval, pre_tokenized(hval));
    head.add_pre_tokenized_text(f.line, pre_tokenized(line));
    head.add_pre_tokenized_text(f.hname, pre_tokenized(names));
    finish_head(f, &mut head, ix);
    let mut body = new_document(f, mailbox, uid, Part::Body);
    let mut body_terms = Vec::new();
    push_value(&ix.body_text.to_lowercase(), "", &mut 0, &mut body_terms);
    body.add_pre_tokenized_text(f.body, pre_tokenized(body_terms));
    body.add_text(f.body_src, &ix.body_text);
    (head, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(value: &str) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        let mut next = 0;
        push_value(value, "", &mut next, &mut out);
        push_value("xy", "", &mut next, &mut out);
        out.into_iter().map(|t| (t.position, t.text)).collect()
    }

    #[test]
    fn values_become_grams_with_a_gap() {
        assert_eq!(
            terms("aßc€"),
            vec![
                (0, "aßc".to_string()),
                (1, "ßc€".to_string()),
                (2, "c€".to_string()),
                (3, "€".to_string()),
                (5, "xy".to_string()),
                (6, "y".to_string()),
            ]
        );
    }

    #[test]
    fn name_prefixes_are_unambiguous() {
        assert_eq!(name_prefix("Subject"), ("07subject".to_string(), false));
        let long = "X".repeat(70);
        let (p, cut) = name_prefix(&long);
        assert!(cut && p.starts_with("z40"));
        let (p64, cut64) = name_prefix(&"x".repeat(64));
        assert!(!cut64 && p64.starts_with("40"));
        // A multi-byte character straddling the cut is dropped whole.
        let (k, cut) = name_key(&format!("{}é", "a".repeat(63)));
        assert!(cut && k.len() == 63);
    }
}

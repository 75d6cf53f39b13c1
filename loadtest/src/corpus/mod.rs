//! A realistic mail corpus, generated: message `index` of corpus `seed` is always the same
//! bytes, so nothing is checked in and any server can be loaded with, and checked against, the
//! same mail. The workload finds a message's `(seed, index)` again in its Message-ID
//! ([`parse_message_id`]) and compares what a server returns with [`generate`]'s bytes.
//!
//! The mix, drawn per message (mean size about 50 KB, as in real mailboxes, where a few
//! attachments carry most of the bytes; `yubin-loadtest corpus` prints the measured mix):
//!
//! | share | kind | shape |
//! |---|---|---|
//! | 30 % | plain | `text/plain` US-ASCII, 1–16 KB, often a reply quoting the thread |
//! | 10 % | 8-bit | `text/plain; charset=utf-8`, `8bit`: accents, Cyrillic, CJK, emoji |
//! | 27 % | alternative | `multipart/alternative`: text + quoted-printable HTML of 4–60 KB |
//! | 15 % | attachments | `multipart/mixed`: text or alternative + 1–3 base64 files (PDF, PNG, JPEG, DOCX, ZIP) of 10–300 KB; one in 33 of these also carries a file of 1–3 MB |
//! | 6 % | forwarded | `multipart/mixed`: a note + `message/rfc822` holding a whole message (itself plain, alternative or with an attachment) |
//! | 12 % | Japanese | ISO-2022-JP encoded-word `Subject:`/`From:`, `text/plain; charset=ISO-2022-JP` body; a third of them with a PDF whose file name is an ISO-2022-JP encoded word |
//!
//! Every message has a full header set: 2–5 `Received:` hops, often DKIM-Signature and
//! Authentication-Results, From/To/Cc/Subject/Date/Message-ID, and for about 40 % a thread
//! (`In-Reply-To`, `References` naming earlier messages of the corpus), for 20 % a mailing list
//! (`List-Id`, `List-Unsubscribe`). Lines end in CRLF and none is longer than 998 bytes.

mod encode;
mod text;

pub use encode::Rng;
use encode::{
    base64_lines, encoded_words, header, iso_2022_jp, mailbox, quoted_printable, rfc5322_date,
};
use text::{JP_PEOPLE, JP_SUBJECTS, LISTS, OWNER, PEOPLE, UTF8_SUBJECTS};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Plain,
    Utf8,
    Alternative,
    Attachments,
    Forwarded,
    Japanese,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Plain,
        Kind::Utf8,
        Kind::Alternative,
        Kind::Attachments,
        Kind::Forwarded,
        Kind::Japanese,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Utf8 => "8-bit",
            Kind::Alternative => "alternative",
            Kind::Attachments => "attachments",
            Kind::Forwarded => "forwarded",
            Kind::Japanese => "Japanese",
        }
    }

    /// Percent of the corpus (the table above).
    fn share(self) -> u64 {
        match self {
            Kind::Plain => 30,
            Kind::Utf8 => 10,
            Kind::Alternative => 27,
            Kind::Attachments => 15,
            Kind::Forwarded => 6,
            Kind::Japanese => 12,
        }
    }
}

pub struct Message {
    pub kind: Kind,
    pub bytes: Vec<u8>,
}

/// Message `index` of corpus `seed`.
pub fn generate(seed: u64, index: u64) -> Message {
    let mut rng = Rng::new(seed, index);
    let mut roll = rng.below(100);
    let kind = Kind::ALL
        .into_iter()
        .find(|k| {
            if roll < k.share() {
                return true;
            }
            roll -= k.share();
            false
        })
        .unwrap_or(Kind::Plain);
    let bytes = build(&mut rng, seed, index, kind, true);
    Message { kind, bytes }
}

/// The Message-ID of message `index` of corpus `seed`: the index and the seed come first in
/// the local part, so [`parse_message_id`] can find the message again.
pub fn message_id(seed: u64, index: u64) -> String {
    let mut rng = Rng::new(seed ^ 0x5EED_1D5E_ED1D_5EED, index);
    let domains = [
        "mail.example.com",
        "mx.example.org",
        "example.co.jp",
        "corp.example.net",
    ];
    let domain = rng.pick(&domains);
    format!("<{index}.{seed}.{}@{domain}>", rng.hex(10))
}

/// `(seed, index)` of a corpus Message-ID (angle brackets and surrounding space allowed).
pub fn parse_message_id(value: &str) -> Option<(u64, u64)> {
    let v = value.trim().strip_prefix('<')?.strip_suffix('>')?;
    let (local, _) = v.split_once('@')?;
    let mut parts = local.split('.');
    let index = parts.next()?.parse().ok()?;
    let seed = parts.next()?.parse().ok()?;
    Some((seed, index))
}

/// How `got` differs from the message `want`, or None when it is the same bytes.
pub fn difference(want: &[u8], got: &[u8]) -> Option<String> {
    if want == got {
        return None;
    }
    let at = want.iter().zip(got).take_while(|(a, b)| a == b).count();
    let near = |b: &[u8]| {
        String::from_utf8_lossy(&b[at.min(b.len())..(at + 40).min(b.len())]).into_owned()
    };
    Some(format!(
        "differs: {} bytes where the message has {}, first at byte {at} ({:?} for {:?})",
        got.len(),
        want.len(),
        near(got),
        near(want)
    ))
}

/// A MIME entity: its Content-* header lines and its body.
struct Entity {
    headers: String,
    body: Vec<u8>,
}

impl Entity {
    fn text(text: &str, subtype: &str, utf8: bool) -> Entity {
        let (charset, cte, body) = match (subtype, utf8) {
            ("html", _) => ("utf-8", "quoted-printable", quoted_printable(text)),
            (_, true) => ("utf-8", "8bit", text.to_string()),
            (_, false) => ("us-ascii", "7bit", text.to_string()),
        };
        Entity {
            headers: format!(
                "Content-Type: text/{subtype}; charset=\"{charset}\"\r\n\
                 Content-Transfer-Encoding: {cte}\r\n"
            ),
            body: body.into_bytes(),
        }
    }

    fn japanese(lines: &[String]) -> Entity {
        let mut body = Vec::new();
        for line in lines {
            body.extend_from_slice(&iso_2022_jp(line));
            body.extend_from_slice(b"\r\n");
        }
        Entity {
            headers: "Content-Type: text/plain; charset=\"ISO-2022-JP\"\r\n\
                      Content-Transfer-Encoding: 7bit\r\n"
                .to_string(),
            body,
        }
    }

    fn multipart(rng: &mut Rng, index: u64, subtype: &str, parts: Vec<Entity>) -> Entity {
        let boundary = format!("----=_Part_{index}_{}", rng.hex(16));
        let mut body = b"This is a multi-part message in MIME format.\r\n\r\n".to_vec();
        for part in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            body.extend_from_slice(part.headers.as_bytes());
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(&part.body);
            if !body.ends_with(b"\r\n") {
                body.extend_from_slice(b"\r\n");
            }
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        Entity {
            headers: format!("Content-Type: multipart/{subtype};\r\n boundary=\"{boundary}\"\r\n"),
            body,
        }
    }

    /// A base64 file of `size` bytes; `name` as given (already encoded when not ASCII).
    fn attachment(rng: &mut Rng, size: usize, name: Option<String>) -> Entity {
        const FILES: &[(&str, &str, &str, &[u8])] = &[
            (
                "application/pdf",
                "report",
                "pdf",
                b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
            ),
            (
                "image/png",
                "screenshot",
                "png",
                b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR",
            ),
            ("image/jpeg", "IMG", "jpg", b"\xff\xd8\xff\xe0\0\x10JFIF\0"),
            (
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "minutes",
                "docx",
                b"PK\x03\x04\x14\0\x06\0",
            ),
            ("application/zip", "logs", "zip", b"PK\x03\x04\x14\0\0\0"),
        ];
        let (mime, stem, ext, magic) = if name.is_some() {
            FILES[0]
        } else {
            *rng.pick(FILES)
        };
        let name = name.unwrap_or_else(|| format!("{stem}-{}.{ext}", rng.range(100, 9999)));
        let mut data = vec![0u8; size.max(magic.len())];
        rng.fill(&mut data);
        data[..magic.len()].copy_from_slice(magic);
        let inline = mime.starts_with("image/") && rng.percent(40);
        let disposition = if inline {
            format!(
                "Content-Disposition: inline; filename=\"{name}\"\r\n\
                 Content-ID: <{}@example.com>\r\n",
                rng.hex(12)
            )
        } else {
            format!("Content-Disposition: attachment; filename=\"{name}\"\r\n")
        };
        Entity {
            headers: format!(
                "Content-Type: {mime}; name=\"{name}\"\r\n{disposition}\
                 Content-Transfer-Encoding: base64\r\n"
            ),
            body: base64_lines(&data).into_bytes(),
        }
    }
}

/// What the top-level headers say about a message.
struct Envelope {
    from: (String, String),
    japanese: bool,
    subject: String,
    unix: i64,
    offset_minutes: i64,
    /// Earlier corpus messages this one replies to, oldest first.
    references: Vec<u64>,
    list: Option<(&'static str, &'static str)>,
}

const BASE_UNIX: i64 = 1_767_600_000; // Mon, 5 Jan 2026 08:00:00 UTC
const OFFSETS: [i64; 6] = [0, 60, -300, 540, 330, -480];

fn build(rng: &mut Rng, seed: u64, index: u64, kind: Kind, outer: bool) -> Vec<u8> {
    let japanese = kind == Kind::Japanese;
    let (name, addr) = if japanese {
        *rng.pick(JP_PEOPLE)
    } else {
        *rng.pick(PEOPLE)
    };
    let mut subject = if japanese {
        (*rng.pick(JP_SUBJECTS)).to_string()
    } else if kind == Kind::Utf8 && rng.percent(50) {
        (*rng.pick(UTF8_SUBJECTS)).to_string()
    } else {
        text::english_subject(rng, index)
    };
    let mut references = Vec::new();
    if outer && index > 0 && rng.percent(40) {
        let depth = rng.range(1, 8).min(index);
        let step = rng.range(1, 3);
        references = (1..=depth)
            .rev()
            .filter_map(|d| index.checked_sub(d * step))
            .collect();
        subject = format!("Re: {subject}");
    }
    if kind == Kind::Forwarded {
        subject = format!("Fwd: {subject}");
    }
    let env = Envelope {
        from: (name.to_string(), addr.to_string()),
        japanese,
        subject,
        unix: BASE_UNIX + (index % 4_000_000) as i64 * 531 + rng.below(500) as i64,
        offset_minutes: if japanese { 540 } else { *rng.pick(&OFFSETS) },
        references,
        list: (outer && rng.percent(20)).then(|| *rng.pick(LISTS)),
    };
    let quote = (!env.references.is_empty()).then(|| {
        let (qn, qa) = rng.pick(PEOPLE);
        format!("{}, {qn} <{qa}>", rfc5322_date(env.unix - 86_400, 0))
    });
    let entity = body_entity(rng, seed, index, kind, &env, quote.as_deref());
    let mut out = headers(rng, seed, index, &env, outer).into_bytes();
    out.extend_from_slice(b"MIME-Version: 1.0\r\n");
    out.extend_from_slice(entity.headers.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&entity.body);
    out
}

fn body_entity(
    rng: &mut Rng,
    seed: u64,
    index: u64,
    kind: Kind,
    env: &Envelope,
    quote: Option<&str>,
) -> Entity {
    let signer = env.from.0.as_str();
    let plain = |rng: &mut Rng, utf8: bool, max: u64| {
        let size = rng.log_range(1_000, max) as usize;
        Entity::text(
            &text::text_body(rng, size, utf8, quote, signer),
            "plain",
            utf8,
        )
    };
    let alternative = |rng: &mut Rng| {
        let utf8 = rng.percent(30);
        let text_part = plain(rng, utf8, 8_000);
        let size = rng.log_range(4_000, 60_000) as usize;
        let html = Entity::text(&text::html_body(rng, size, utf8, signer), "html", true);
        Entity::multipart(rng, index, "alternative", vec![text_part, html])
    };
    match kind {
        Kind::Plain => plain(rng, false, 16_000),
        Kind::Utf8 => plain(rng, true, 16_000),
        Kind::Alternative => alternative(rng),
        Kind::Attachments => {
            let first = if rng.percent(50) {
                alternative(rng)
            } else {
                let utf8 = rng.percent(30);
                plain(rng, utf8, 6_000)
            };
            let mut parts = vec![first];
            let files = match rng.below(100) {
                0..65 => 1,
                65..90 => 2,
                _ => 3,
            };
            for _ in 0..files {
                let size = rng.log_range(10_000, 300_000) as usize;
                parts.push(Entity::attachment(rng, size, None));
            }
            if rng.percent(3) {
                let size = rng.log_range(1_000_000, 3_000_000) as usize;
                parts.push(Entity::attachment(rng, size, None));
            }
            Entity::multipart(rng, index, "mixed", parts)
        }
        Kind::Forwarded => {
            let mut inner_rng = Rng::new(seed ^ 0xF0F0_F0F0_F0F0_F0F0, index);
            let inner_kind = *inner_rng.pick(&[Kind::Plain, Kind::Alternative, Kind::Attachments]);
            let inner = build(&mut inner_rng, seed, index, inner_kind, false);
            let note = format!(
                "FYI, see below.\r\n\r\n{}\r\n---------- Forwarded message ---------\r\n\
                 (attached)\r\n",
                text::wrap(&text::paragraph(rng, false), "").trim_end()
            );
            let note = Entity::text(&note, "plain", false);
            let attached = Entity {
                headers: "Content-Type: message/rfc822\r\n\
                          Content-Disposition: attachment; filename=\"forwarded.eml\"\r\n"
                    .to_string(),
                body: inner,
            };
            Entity::multipart(rng, index, "mixed", vec![note, attached])
        }
        Kind::Japanese => {
            let size = rng.log_range(600, 6_000) as usize;
            let lines = text::japanese_lines(rng, size, "モーガン", signer);
            let text_part = Entity::japanese(&lines);
            if rng.percent(33) {
                let stem = rng.pick(&["見積書", "議事録", "請求書", "資料"]);
                let name = encoded_words(&format!("{stem}{}.pdf", rng.range(1, 99)), true);
                // A file name in encoded words, as Japanese mail user agents write it (RFC 2047
                // forbids it in a parameter, but it is what real mail carries).
                let name = name.replace("\r\n ", "");
                let size = rng.log_range(10_000, 200_000) as usize;
                let pdf = Entity::attachment(rng, size, Some(name));
                Entity::multipart(rng, index, "mixed", vec![text_part, pdf])
            } else {
                text_part
            }
        }
    }
}

fn headers(rng: &mut Rng, seed: u64, index: u64, env: &Envelope, outer: bool) -> String {
    let mut h = String::new();
    let (from_name, from_addr) = (&env.from.0, &env.from.1);
    if outer {
        h.push_str(&format!("Return-Path: <{from_addr}>\r\n"));
        let hops = rng.range(2, 5) as i64;
        for hop in (0..hops).rev() {
            let when = rfc5322_date(env.unix + 2 + hop * 3, 0);
            let line = if hop == hops - 1 {
                format!(
                    "Received: from mx{a}.out.example.net (mx{a}.out.example.net \
                     [198.51.100.{b}])\r\n\tby mail.example.com (Postfix) with ESMTPS id {id}\r\n\
                     \tfor <{owner}>; {when}\r\n",
                    a = rng.range(1, 9),
                    b = rng.range(2, 250),
                    id = rng.hex(10),
                    owner = OWNER.1
                )
            } else {
                format!(
                    "Received: from [10.{}.{}.{}] (helo=smtp.example.org)\r\n\tby \
                     relay{}.example.net with esmtpsa (TLS1.3) id {}; {when}\r\n",
                    rng.below(256),
                    rng.below(256),
                    rng.range(1, 254),
                    rng.range(1, 40),
                    rng.hex(16)
                )
            };
            h.push_str(&line);
        }
        h.push_str(&format!(
            "Authentication-Results: mail.example.com;\r\n\tdkim=pass header.d={d};\r\n\
             \tspf=pass smtp.mailfrom={from_addr}\r\n",
            d = from_addr.split('@').nth(1).unwrap_or("example.net")
        ));
        if rng.percent(50) {
            let sig: String = (0..4).map(|_| rng.hex(64)).collect();
            h.push_str(&format!(
                "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=s1;\r\n\
                 \th=from:to:cc:subject:date:message-id:references;\r\n\tbh={}=;\r\n\
                 \tb={}\r\n\t {}\r\n\t {}\r\n\t {}\r\n",
                rng.hex(43),
                &sig[..64],
                &sig[64..128],
                &sig[128..192],
                &sig[192..]
            ));
        }
    }
    h.push_str(&header(
        "From",
        &mailbox(from_name, from_addr, env.japanese),
    ));
    let owner_name = if env.japanese {
        "モーガン・リー"
    } else {
        OWNER.0
    };
    h.push_str(&header("To", &mailbox(owner_name, OWNER.1, env.japanese)));
    if rng.percent(30) {
        let cc: Vec<String> = (0..rng.range(1, 4))
            .map(|_| {
                let (n, a) = rng.pick(PEOPLE);
                mailbox(n, a, false)
            })
            .collect();
        h.push_str(&header("Cc", &cc.join(", ")));
    }
    let subject = if env.subject.is_ascii() {
        env.subject.clone()
    } else {
        encoded_words(&env.subject, env.japanese)
    };
    h.push_str(&header("Subject", &subject));
    h.push_str(&header("Date", &rfc5322_date(env.unix, env.offset_minutes)));
    let id = if outer {
        message_id(seed, index)
    } else {
        format!("<fwd.{index}.{}@example.org>", rng.hex(12))
    };
    h.push_str(&format!("Message-ID: {id}\r\n"));
    if let Some(&parent) = env.references.last() {
        h.push_str(&format!("In-Reply-To: {}\r\n", message_id(seed, parent)));
        let refs: Vec<String> = env
            .references
            .iter()
            .map(|&r| message_id(seed, r))
            .collect();
        h.push_str(&format!("References: {}\r\n", refs.join("\r\n ")));
    }
    if let Some((list_name, list_id)) = env.list {
        h.push_str(&format!("List-Id: {list_name} <{list_id}>\r\n"));
        h.push_str(&format!(
            "List-Unsubscribe: <mailto:leave-{}@{list_id}>,\r\n <https://{list_id}/unsub>\r\n",
            rng.hex(8)
        ));
        h.push_str("Precedence: list\r\n");
    }
    let agents = [
        "User-Agent: Mozilla Thunderbird",
        "X-Mailer: Microsoft Outlook 16.0",
        "X-Mailer: Apple Mail (2.3774.500.171)",
        "User-Agent: Mutt/2.2.12 (2023-09-09)",
    ];
    h.push_str(rng.pick::<&str>(&agents));
    h.push_str("\r\n");
    h
}

/// Per-kind counts and sizes of a run of the corpus.
#[derive(Debug, Default)]
pub struct Summary {
    pub by_kind: Vec<(Kind, u64, u64)>,
    pub count: u64,
    pub bytes: u64,
    pub largest: u64,
}

impl Summary {
    pub fn add(&mut self, m: &Message) {
        let len = m.bytes.len() as u64;
        self.count += 1;
        self.bytes += len;
        self.largest = self.largest.max(len);
        match self.by_kind.iter_mut().find(|(k, _, _)| *k == m.kind) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 += len;
            }
            None => self.by_kind.push((m.kind, 1, len)),
        }
        self.by_kind.sort();
    }
}

#[cfg(test)]
mod tests;

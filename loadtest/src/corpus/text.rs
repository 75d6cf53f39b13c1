//! What the corpus writes about: people, words, sentences in several languages, and the text
//! and HTML bodies built from them.

use super::encode::Rng;

/// (display name, address); names outside ASCII become UTF-8 encoded words.
pub const PEOPLE: &[(&str, &str)] = &[
    ("Alice Martin", "alice.martin@example.com"),
    ("Bob Chen", "bob@chen.example.org"),
    ("Élodie Dupont", "elodie.dupont@example.fr"),
    ("Jürgen Müller", "j.mueller@example.de"),
    ("Priya Raman", "priya.raman@example.in"),
    ("Carlos Ruiz", "cruiz@example.es"),
    ("Dana Whitfield", "dana.whitfield@corp.example.com"),
    ("Noah Feldman", "noah@feldman.example"),
    ("Sofia Rossi", "sofia.rossi@example.it"),
    ("Ingrid Johansson", "ingrid@example.se"),
    ("Ming Li", "ming.li@example.cn"),
    ("Ольга Петрова", "olga.petrova@example.ru"),
    ("Zoë O'Brien", "zoe.obrien@example.ie"),
    ("Tomás García", "tomas@garcia.example.mx"),
    ("Release Bot", "noreply@ci.example.net"),
];

/// Japanese senders: every character is in JIS X 0208, so ISO-2022-JP can carry the name.
pub const JP_PEOPLE: &[(&str, &str)] = &[
    ("田中 太郎", "tanaka@example.co.jp"),
    ("鈴木 花子", "h.suzuki@example.co.jp"),
    ("佐藤 健", "sato.ken@example.ne.jp"),
    ("山本 美咲", "misaki@example.jp"),
    ("高橋 誠", "takahashi@example.co.jp"),
];

/// The mailbox owner, the usual `To:` of the corpus.
pub const OWNER: (&str, &str) = ("Morgan Lee", "morgan.lee@example.com");

pub const LISTS: &[(&str, &str)] = &[
    ("Project Updates", "updates.lists.example.org"),
    ("rust-users", "rust-users.lists.example.net"),
    ("Team Announcements", "announce.corp.example.com"),
    ("Kernel Development", "dev.kernel.example.org"),
];

#[rustfmt::skip]
const WORDS: &[&str] = &[
    "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be",
    "by", "on", "not", "we", "this", "are", "or", "from", "have", "an", "they", "which", "you",
    "were", "her", "all", "there", "would", "their", "will", "when", "who", "more", "if", "out",
    "so", "said", "what", "up", "its", "about", "than", "into", "them", "can", "only", "other",
    "new", "some", "could", "time", "these", "two", "may", "then", "first", "any", "like", "now",
    "such", "our", "over", "also", "did", "many", "before", "must", "through", "years", "where",
    "much", "your", "way", "well", "down", "should", "because", "each", "just", "people", "how",
    "too", "little", "state", "good", "very", "make", "world", "still", "own", "see", "men",
    "work", "long", "here", "get", "both", "between", "life", "being", "under", "never", "day",
    "same", "another", "know", "while", "last", "might", "great", "old", "year", "off", "come",
    "since", "against", "go", "came", "right", "used", "take", "three", "meeting", "report",
    "budget", "release", "deadline", "schedule", "invoice", "contract", "proposal", "feedback",
    "review", "quarter", "customer", "server", "deployment", "migration", "dashboard", "analysis",
    "summary", "agenda", "estimate", "prototype", "roadmap", "milestone", "attachment", "slides",
    "numbers", "forecast", "outage", "incident", "backup", "storage", "latency", "throughput",
    "mailbox", "calendar", "office", "travel", "conference", "workshop", "vendor", "license",
    "renewal", "approval", "draft",
];

/// Sentences people write in 8-bit mail: accents, Cyrillic, CJK, emoji.
const UTF8_SENTENCES: &[&str] = &[
    "Merci pour votre réponse rapide, je reviens vers vous très bientôt.",
    "Die Besprechung wurde auf Donnerstag verschoben, bitte prüfen Sie den Kalender.",
    "El informe está casi listo; sólo faltan las cifras de ventas del último trimestre.",
    "Привет! Посмотри, пожалуйста, приложенный документ до пятницы.",
    "会議は来週の火曜日に変更になりました。資料は共有フォルダにあります。",
    "Ça marche — à demain ☕",
    "Grüße aus München, und danke für die schnelle Hilfe 🍺",
    "Vi ses på fredag; glöm inte nyckeln till förrådet.",
    "我们下周一开会讨论新的预算方案。",
    "Obrigado pela atenção — até já!",
    "Ürün lansmanı için son tarih önümüzdeki çarşamba.",
    "Καλή συνέχεια και ευχαριστώ για όλα.",
];

/// Japanese business-mail sentences, all in JIS X 0208.
pub const JP_SENTENCES: &[&str] = &[
    "お世話になっております。",
    "株式会社山田商事の田中です。",
    "先日の打ち合わせの件でご連絡いたしました。",
    "資料を添付いたしましたので、ご確認のほどよろしくお願いいたします。",
    "来週の会議の日程について、ご都合をお聞かせください。",
    "見積書の内容に変更がございましたので、再送いたします。",
    "ご不明な点がございましたら、お気軽にお問い合わせください。",
    "引き続きよろしくお願い申し上げます。",
    "本日は東京で雨が降っています。",
    "新しい製品の発売日が決まりました。",
    "郵便番号と住所をご記入ください。",
    "担当者が不在のため、折り返しご連絡いたします。",
    "システムの保守作業は午前二時から四時まで行います。",
    "以上、よろしくお願いいたします。",
];

pub const JP_SUBJECTS: &[&str] = &[
    "会議の日程について",
    "見積書送付のお知らせ",
    "打ち合わせ資料の件",
    "【重要】システムメンテナンスのお知らせ",
    "請求書の送付について",
    "新年のご挨拶",
    "出張報告書",
    "契約更新のご案内",
];

pub const UTF8_SUBJECTS: &[&str] = &[
    "Réunion de lundi : ordre du jour",
    "Änderungen am Vertrag",
    "Presupuesto revisado — versión 3",
    "Отчёт за квартал",
    "Café ☕ demain ?",
    "季度报告",
];

const TOPICS: &[&str] = &[
    "Q3 budget review",
    "Release 2.4 schedule",
    "Invoice #{n} for November",
    "Notes from the design review",
    "Outage on storage cluster {n}",
    "Conference travel plans",
    "Updated roadmap and milestones",
    "Contract renewal with vendor",
    "Weekly status: team {n}",
    "Slides for Thursday",
    "Dashboard numbers look off",
    "Migration plan, draft {n}",
    "[ci] build #{n} failed on main",
    "Lunch on Friday?",
];

pub fn english_subject(rng: &mut Rng, n: u64) -> String {
    rng.pick(TOPICS).replace("{n}", &(n % 9973).to_string())
}

pub fn sentence(rng: &mut Rng) -> String {
    let len = rng.range(6, 18);
    let mut s = String::new();
    for i in 0..len {
        let w = *rng.pick(WORDS);
        if i == 0 {
            let mut c = w.chars();
            let first = c.next().expect("word").to_ascii_uppercase();
            s.push(first);
            s.push_str(c.as_str());
        } else {
            s.push(' ');
            s.push_str(w);
            if i + 1 < len && rng.percent(8) {
                s.push(',');
            }
        }
    }
    s.push(if rng.percent(10) { '?' } else { '.' });
    s
}

/// A paragraph of sentences; with `utf8`, one in three is a non-English 8-bit sentence.
pub fn paragraph(rng: &mut Rng, utf8: bool) -> String {
    let n = rng.range(2, 6);
    (0..n)
        .map(|_| {
            if utf8 && rng.percent(33) {
                (*rng.pick(UTF8_SENTENCES)).to_string()
            } else {
                sentence(rng)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Wraps at 72 columns (counted in characters) with CRLF line ends.
pub fn wrap(text: &str, prefix: &str) -> String {
    let mut out = String::new();
    let mut line = String::from(prefix);
    let mut width = prefix.chars().count();
    for word in text.split(' ') {
        let w = word.chars().count();
        if width + 1 + w > 72 && width > prefix.len() {
            out.push_str(line.trim_end());
            out.push_str("\r\n");
            line = String::from(prefix);
            width = prefix.chars().count();
        }
        if width > prefix.len() {
            line.push(' ');
            width += 1;
        }
        line.push_str(word);
        width += w;
    }
    out.push_str(line.trim_end());
    out.push_str("\r\n");
    out
}

/// A plain-text body of about `target` bytes: paragraphs, an optional quote of an earlier
/// message (`quote_from`: who wrote it and when), and a signature.
pub fn text_body(
    rng: &mut Rng,
    target: usize,
    utf8: bool,
    quote_from: Option<&str>,
    signer: &str,
) -> String {
    let mut body = String::new();
    let greeting = ["Hi,", "Hello all,", "Dear team,", "Morgan,", "Hi everyone,"];
    body.push_str(rng.pick::<&str>(&greeting));
    body.push_str("\r\n\r\n");
    let own = if quote_from.is_some() {
        target / 3
    } else {
        target
    };
    while body.len() < own {
        body.push_str(&wrap(&paragraph(rng, utf8), ""));
        body.push_str("\r\n");
    }
    body.push_str(&format!("-- \r\n{signer}\r\n"));
    if let Some(who) = quote_from {
        body.push_str(&format!("\r\nOn {who} wrote:\r\n"));
        while body.len() < target {
            body.push_str(&wrap(&paragraph(rng, utf8), "> "));
            body.push_str(">\r\n");
        }
    }
    body
}

/// An HTML alternative of roughly `target` bytes, in the verbose style of webmail and
/// newsletter HTML (inline styles, layout tables).
pub fn html_body(rng: &mut Rng, target: usize, utf8: bool, signer: &str) -> String {
    let mut h = String::from(
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Type\" content=\"text/html; \
         charset=utf-8\"><style type=\"text/css\">body{margin:0;padding:0}\
         .wrap{max-width:640px;margin:0 auto}td{font-family:Arial,Helvetica,sans-serif}\
         </style></head>\r\n<body><div class=\"wrap\" dir=\"ltr\" style=\"font-family:Arial,\
         Helvetica,sans-serif;font-size:14px;line-height:1.5;color:#222222\">\r\n",
    );
    while h.len() < target * 2 / 3 {
        h.push_str("<p style=\"margin:0 0 12px 0\">");
        h.push_str(&paragraph(rng, utf8).replace('&', "&amp;"));
        h.push_str("</p>\r\n");
        if rng.percent(25) {
            h.push_str(
                "<table cellpadding=\"0\" cellspacing=\"0\" border=\"0\" width=\"100%\" \
                 style=\"border-collapse:collapse;margin:8px 0\">",
            );
            for _ in 0..rng.range(3, 12) {
                h.push_str("<tr>");
                for _ in 0..4 {
                    h.push_str(&format!(
                        "<td style=\"padding:4px 8px;border:1px solid #dddddd;color:#{:06x}\">\
                         {}</td>",
                        rng.below(0x80_0000),
                        sentence(rng)
                    ));
                }
                h.push_str("</tr>");
            }
            h.push_str("</table>\r\n");
        }
    }
    h.push_str(&format!(
        "<div class=\"signature\" style=\"color:#888888;font-size:12px\">-- <br>{signer}\
         </div>\r\n"
    ));
    while h.len() < target {
        // Footer boilerplate: tracking-style links, as newsletters carry.
        h.push_str(&format!(
            "<p style=\"font-size:11px;color:#999999\"><a href=\"https://links.example.net/\
             c/{}?u={}\" style=\"color:#999999\">Unsubscribe</a> | <a href=\"https://links.\
             example.net/p/{}\">Privacy</a></p>\r\n",
            rng.hex(24),
            rng.hex(12),
            rng.hex(16)
        ));
    }
    h.push_str("</div></body></html>\r\n");
    h
}

/// A Japanese body of about `target` bytes (counted before encoding) from `signer` to
/// `addressee`: short lines, as Japanese mail is written.
pub fn japanese_lines(rng: &mut Rng, target: usize, addressee: &str, signer: &str) -> Vec<String> {
    let mut lines = vec![format!("{addressee}様"), String::new()];
    let mut size = 0;
    while size < target {
        let s = *rng.pick(JP_SENTENCES);
        // Lines of at most 35 characters.
        let chars: Vec<char> = s.chars().collect();
        for chunk in chars.chunks(35) {
            let line: String = chunk.iter().collect();
            size += line.len();
            lines.push(line);
        }
        if rng.percent(30) {
            lines.push(String::new());
        }
    }
    lines.push(String::new());
    lines.push("--".to_string());
    lines.push(signer.to_string());
    lines
}

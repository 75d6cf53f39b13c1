//! Differential test against Dovecot, the reference IMAP server: the scripts in `imap_scripts/`
//! run against a private Dovecot (Debian's `dovecot-imapd`, started here from a generated config in
//! a temporary directory) and against `yubin dev`; both transcripts are normalized where servers
//! legitimately differ (human-readable text, capability lists, UIDVALIDITY and MODSEQ values, the
//! order of LIST lines and SEARCH numbers, literal vs quoted strings) and compared command by
//! command. Every other difference fails the test, unless `ALLOWED` below names it with the RFC
//! text that allows both answers.

mod common;

use common::response::{Parser, Untagged, Value, parse_untagged, response_code};
use common::start_dev;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use yubin_loadtest::client::{Imap, Line};

const PASSWORD: &str = "diff-pw";
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Whole commands whose answers may differ: (script, command, why). Either both answers are
/// allowed by the RFCs, or Dovecot is the one that deviates (Yubin's answer is named). A command
/// that occurs more than once in its script is named with `#n` for its n-th occurrence.
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "changes",
        "STORE 1 +FLAGS (\\Recent)",
        "RFC 3501 §2.3.2 says \\Recent cannot be altered but names no error: Dovecot answers \
         BAD, Yubin ignores the flag and answers OK with the unchanged FLAGS",
    ),
    (
        "changes",
        "STORE 1 +FLAGS (\\Flagged)",
        "in an EXAMINEd mailbox: RFC 3501 §6.3.2 permits no change to the mailbox; Dovecot \
         answers OK without storing, Yubin answers NO [READ-ONLY]",
    ),
    (
        "changes",
        "EXPUNGE#2",
        "in an EXAMINEd mailbox: Dovecot answers OK expunging nothing, Yubin NO [READ-ONLY]; \
         RFC 3501 §6.4.3 names no answer",
    ),
    (
        "mailboxes",
        "CREATE INBOX",
        "RFC 3501 §6.3.3: creating INBOX is an error; Dovecot answers OK, Yubin NO",
    ),
    (
        "protocol",
        "NOOP extra",
        "RFC 3501 §9: NOOP takes no arguments; Dovecot ignores them, Yubin answers BAD",
    ),
    (
        "sessions",
        "FETCH 1:* (FLAGS UID)",
        "a message expunged by another session, not yet announced: RFC 2180 §4.1.1 allows \
         returning its data (Dovecot) or NO with the others' data (Yubin, [EXPUNGEISSUED] of \
         RFC 5530)",
    ),
    (
        "sessions",
        "SEARCH ALL",
        "RFC 2180 §4.1.4: a message expunged by another session but not yet announced may or \
         may not match; Dovecot includes it, Yubin does not",
    ),
    (
        "sessions",
        "UID SEARCH ALL",
        "as SEARCH ALL (RFC 2180 §4.1.4); the EXPUNGE that follows is the same on both",
    ),
];

/// Response codes of RFC 5530 that a server may add to a NO or BAD (RFC 3501 §7.1: response
/// codes are optional): one server giving one where the other gives none is not a difference.
const OPTIONAL_CODES: &[&str] = &[
    "ALREADYEXISTS",
    "AUTHENTICATIONFAILED",
    "AUTHORIZATIONFAILED",
    "CANNOT",
    "CLIENTBUG",
    "CONTACTADMIN",
    "CORRUPTION",
    "EXPIRED",
    "EXPUNGEISSUED",
    "INUSE",
    "LIMIT",
    "NONEXISTENT",
    "NOPERM",
    "OVERQUOTA",
    "PRIVACYREQUIRED",
    "SERVERBUG",
    "UNAVAILABLE",
];

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/imap_scripts")
}

// ---------------------------------------------------------------------------------------------
// A private Dovecot.

struct Dovecot {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

/// Output of a command that must succeed.
fn run_tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Dovecot {
    /// Starts Dovecot in the foreground with users `users` (password PASSWORD each).
    fn start(users: &[String]) -> Dovecot {
        let version = Command::new("dovecot")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|e| {
                panic!(
                    "dovecot is not installed ({e}); scripts/test.sh installs Debian's \
                     dovecot-imapd"
                )
            });
        // The settings below are Dovecot 2.3's; 2.4 renamed most of them.
        assert!(
            version.starts_with("2.3."),
            "this test writes a Dovecot 2.3 configuration, found Dovecot {version}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // Dovecot's login processes run as an unprivileged user and must reach the sockets in
        // base_dir; its mail processes refuse UID 0. As root, use the package's users and
        // `nobody` for mail; as anyone else, run everything as that user.
        let as_root = run_tool("id", &["-u"]) == "0";
        let (login_user, internal_user, internal_group, mail_user, mail_group) = if as_root {
            (
                "dovenull".to_string(),
                "dovecot".to_string(),
                "dovecot".to_string(),
                "nobody".to_string(),
                run_tool("id", &["-gn", "nobody"]),
            )
        } else {
            let user = run_tool("id", &["-un"]);
            let group = run_tool("id", &["-gn"]);
            (user.clone(), user.clone(), group.clone(), user, group)
        };
        let mail = root.join("mail");
        let run = root.join("run");
        for d in [&mail, &run, &root.join("state")] {
            std::fs::create_dir_all(d).expect("dovecot dirs");
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        if as_root {
            let uid: u32 = run_tool("id", &["-u", &mail_user]).parse().expect("uid");
            let gid: u32 = run_tool("getent", &["group", &mail_group])
                .split(':')
                .nth(2)
                .and_then(|g| g.parse().ok())
                .expect("gid");
            std::os::unix::fs::chown(&mail, Some(uid), Some(gid)).expect("chown mail dir");
        }
        let passwd: String = users
            .iter()
            .map(|u| format!("{u}:{{PLAIN}}{PASSWORD}::::::\n"))
            .collect();
        std::fs::write(root.join("users"), passwd).expect("passwd-file");
        let port = free_port();
        let r = root.display();
        let config = format!(
            "protocols = imap\n\
             listen = 127.0.0.1\n\
             base_dir = {r}/run\n\
             state_dir = {r}/state\n\
             instance_name = yubin-diff-{port}\n\
             log_path = {r}/dovecot.log\n\
             ssl = no\n\
             disable_plaintext_auth = no\n\
             auth_mechanisms = plain login\n\
             default_login_user = {login_user}\n\
             default_internal_user = {internal_user}\n\
             default_internal_group = {internal_group}\n\
             first_valid_uid = 0\n\
             mail_location = sdbox:{r}/mail/%u\n\
             namespace inbox {{\n  inbox = yes\n  separator = /\n  prefix =\n}}\n\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {r}/users\n}}\n\
             userdb {{\n  driver = static\n  args = uid={mail_user} gid={mail_group} home={r}/mail/%u\n}}\n\
             service imap-login {{\n  chroot =\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             service anvil {{\n  chroot =\n}}\n"
        );
        let config_path = root.join("dovecot.conf");
        std::fs::write(&config_path, config).expect("dovecot.conf");
        let child = Command::new("dovecot")
            .args(["-F", "-c", config_path.to_str().expect("utf-8 path")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn dovecot");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let mut dovecot = Dovecot { child, dir, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            if Instant::now() > deadline || matches!(dovecot.child.try_wait(), Ok(Some(_))) {
                panic!("dovecot did not start:\n{}", dovecot.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        dovecot
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts.

struct Step {
    session: usize,
    /// The command as written (without tag), for reports.
    text: String,
    /// What goes on the wire: pieces separated by synchronizing literals.
    pieces: Vec<Vec<u8>>,
    sleep: Option<Duration>,
}

fn message_bytes(name: &str) -> Vec<u8> {
    let path = scripts_dir().join("messages").join(format!("{name}.eml"));
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The files use LF; the wire (RFC 5322 §2.1) uses CRLF.
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20);
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn parse_script(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(ms) = line.strip_prefix("!sleep ") {
            steps.push(Step {
                session: 0,
                text: line.to_string(),
                pieces: Vec::new(),
                sleep: Some(Duration::from_millis(ms.trim().parse().expect("!sleep ms"))),
            });
            continue;
        }
        let (session, command) = match line.strip_prefix('[') {
            Some(rest) => {
                let (n, cmd) = rest.split_once("] ").expect("[n] COMMAND");
                (n.parse::<usize>().expect("session number") - 1, cmd)
            }
            None => (0, line),
        };
        // Split at {eml:NAME} / {lit:TEXT}: each becomes `{n}` CRLF + bytes.
        let mut pieces = Vec::new();
        let mut current = Vec::new();
        let mut rest = command;
        while let Some(start) = rest.find('{') {
            let end = rest[start..].find('}').map(|e| start + e);
            let Some(end) = end else { break };
            let inner = &rest[start + 1..end];
            let literal = if let Some(name) = inner.strip_prefix("eml:") {
                Some(message_bytes(name))
            } else {
                inner.strip_prefix("lit:").map(|t| t.as_bytes().to_vec())
            };
            match literal {
                Some(bytes) => {
                    current.extend_from_slice(&rest.as_bytes()[..start]);
                    current.extend_from_slice(format!("{{{}}}", bytes.len()).as_bytes());
                    pieces.push(std::mem::take(&mut current));
                    current = bytes;
                }
                None => current.extend_from_slice(&rest.as_bytes()[..=end]),
            }
            rest = &rest[end + 1..];
        }
        current.extend_from_slice(rest.as_bytes());
        pieces.push(current);
        steps.push(Step {
            session,
            text: command.to_string(),
            pieces,
            sleep: None,
        });
    }
    steps
}

/// Runs a script on one server; returns the normalized response of every step.
async fn run_script(addr: SocketAddr, user: &str, steps: &[Step]) -> Vec<Vec<String>> {
    let sessions = steps.iter().map(|s| s.session + 1).max().unwrap_or(1);
    let mut conns = Vec::new();
    for _ in 0..sessions {
        conns.push(Imap::login(addr, user, PASSWORD).await);
    }
    let mut transcript = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        if let Some(pause) = step.sleep {
            tokio::time::sleep(pause).await;
            transcript.push(Vec::new());
            continue;
        }
        let tag = format!("A{:03}", n + 1);
        let imap = &mut conns[step.session];
        let mut lines: Vec<Line> = Vec::new();
        let mut status = None;
        for (i, piece) in step.pieces.iter().enumerate() {
            let mut bytes = if i == 0 {
                format!("{tag} ").into_bytes()
            } else {
                Vec::new()
            };
            bytes.extend_from_slice(piece);
            let last = i + 1 == step.pieces.len();
            if last {
                bytes.extend_from_slice(b"\r\n");
                imap.send_raw(&bytes).await;
                break;
            }
            bytes.extend_from_slice(b"\r\n");
            imap.send_raw(&bytes).await;
            // A synchronizing literal waits for the continuation request (RFC 3501 §7.5); a
            // tagged answer instead means the server refused the command before the literal.
            loop {
                let line = imap
                    .read_line_within(REPLY_TIMEOUT)
                    .await
                    .unwrap_or_else(|| panic!("no answer to {tag} {}", step.text));
                if line.text.starts_with('+') {
                    break;
                }
                if let Some(rest) = line.text.strip_prefix(&format!("{tag} ")) {
                    status = Some(rest.to_string());
                    break;
                }
                lines.push(line);
            }
            if status.is_some() {
                break;
            }
        }
        while status.is_none() {
            let Some(line) = imap.read_line_within(REPLY_TIMEOUT).await else {
                // LOGOUT closes the connection after its tagged OK; anything else is a hang.
                panic!("no tagged answer to {tag} {}", step.text);
            };
            if let Some(rest) = line.text.strip_prefix(&format!("{tag} ")) {
                status = Some(rest.to_string());
            } else if line.text.starts_with('+') {
                // A continuation nobody asked for (AUTHENTICATE): cancel it (RFC 3501 §6.2.2).
                lines.push(line);
                imap.send_raw(b"*\r\n").await;
            } else {
                lines.push(line);
            }
        }
        transcript.push(normalize(
            &step.text,
            &lines,
            &format!("{tag} {}", status.expect("status")),
        ));
    }
    transcript
}

// ---------------------------------------------------------------------------------------------
// Normalization: only what servers may legitimately choose differently.

fn render(value: &Value, out: &mut String) {
    match value {
        Value::Atom(a) => out.push_str(a),
        // Quoted and literal strings are the same string (RFC 3501 §4.3).
        Value::Bytes(b) => {
            out.push('"');
            for &c in b {
                match c {
                    b'"' | b'\\' => {
                        out.push('\\');
                        out.push(c as char);
                    }
                    0x20..=0x7e => out.push(c as char),
                    _ => {
                        let _ = write!(out, "\\x{c:02x}");
                    }
                }
            }
            out.push('"');
        }
        Value::List(items) => {
            out.push('(');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                render(v, out);
            }
            out.push(')');
        }
    }
}

fn rendered(value: &Value) -> String {
    let mut s = String::new();
    render(value, &mut s);
    s
}

/// A list of atoms whose order carries no meaning (flags, mailbox attributes), sorted.
fn sorted_set(value: &Value) -> String {
    match value {
        Value::List(items) => {
            let set: BTreeSet<String> = items.iter().map(rendered).collect();
            format!("({})", set.into_iter().collect::<Vec<_>>().join(" "))
        }
        other => rendered(other),
    }
}

/// INTERNALDATE as the UTC instant: a server may keep the instant and not the zone the
/// APPEND gave (RFC 3501 §2.3.3 defines the internal date as a point in time).
fn utc_date(value: &Value) -> String {
    let Value::Bytes(raw) = value else {
        return rendered(value);
    };
    let text = String::from_utf8_lossy(raw);
    let parsed = (|| {
        let (date, rest) = text.trim().split_once(' ')?;
        let (time, zone) = rest.split_once(' ')?;
        let mut d = date.split('-');
        let day: i64 = d.next()?.trim().parse().ok()?;
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let month_name = d.next()?;
        let month = MONTHS
            .iter()
            .position(|m| m.eq_ignore_ascii_case(month_name))? as i64
            + 1;
        let year: i64 = d.next()?.parse().ok()?;
        let mut t = time.split(':').map(|x| x.parse::<i64>().ok());
        let (h, m, s) = (t.next()??, t.next()??, t.next()??);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let zone: i64 = zone.get(1..)?.parse().ok()?;
        let offset = sign * ((zone / 100) * 3600 + (zone % 100) * 60);
        // Days from the civil date (Howard Hinnant's algorithm), then back after the shift.
        let (y, mo) = if month <= 2 {
            (year - 1, month + 9)
        } else {
            (year, month - 3)
        };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * mo + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        let secs = days * 86_400 + h * 3600 + m * 60 + s - offset;
        let (days, secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Some(format!(
            "\"{day:02}-{}-{year} {:02}:{:02}:{:02} +0000\"",
            MONTHS[(month - 1) as usize],
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        ))
    })();
    parsed.unwrap_or_else(|| rendered(value))
}

/// BODY/BODYSTRUCTURE with the spellings the grammar leaves open made one: transfer encodings
/// are case-insensitive (RFC 2045 §6.1), and body-fld-lang may be a string or a list of strings
/// (RFC 3501 §9), so a list of one string is that string. (A parameter list always has an even
/// number of strings, an address list holds lists: neither is a list of one string.)
fn canonical_body(value: &Value) -> Value {
    const ENCODINGS: [&str; 5] = ["7bit", "8bit", "binary", "base64", "quoted-printable"];
    match value {
        Value::Bytes(b) => {
            let s = String::from_utf8_lossy(b);
            if ENCODINGS.iter().any(|e| s.eq_ignore_ascii_case(e)) {
                Value::Bytes(s.to_ascii_lowercase().into_bytes())
            } else {
                value.clone()
            }
        }
        Value::List(items) if items.len() == 1 && matches!(items[0], Value::Bytes(_)) => {
            items[0].clone()
        }
        Value::List(items) => Value::List(items.iter().map(canonical_body).collect()),
        Value::Atom(_) => value.clone(),
    }
}

/// A mailbox name: an atom and a quoted string name the same mailbox.
fn mailbox_name(value: &Value) -> String {
    match value {
        Value::Atom(a) if !a.eq_ignore_ascii_case("NIL") => {
            rendered(&Value::Bytes(a.clone().into_bytes()))
        }
        other => rendered(other),
    }
}

/// A response code with the server's own numbers masked; None drops it (CAPABILITY: which
/// extensions are advertised is the server's choice).
fn normalize_code(code: &str) -> Option<String> {
    let (name, rest) = code.split_once(' ').unwrap_or((code, ""));
    let name = name.to_ascii_uppercase();
    match name.as_str() {
        "CAPABILITY" => None,
        // RFC 8474 §4.1 (CREATE's OK): Dovecot 2.3 has no OBJECTID.
        "MAILBOXID" => None,
        "UIDVALIDITY" => Some("UIDVALIDITY <uidvalidity>".into()),
        "HIGHESTMODSEQ" => Some("HIGHESTMODSEQ <modseq>".into()),
        "APPENDUID" | "COPYUID" => {
            let rest = rest.split_once(' ').map_or("", |r| r.1);
            Some(format!("{name} <uidvalidity> {rest}"))
        }
        // The list of supported charsets after BADCHARSET is optional (RFC 3501 §7.1).
        "BADCHARSET" => Some(name),
        "PERMANENTFLAGS" => {
            let mut p = Parser::new(rest, &[]);
            Some(match p.value() {
                Ok(v) => format!("PERMANENTFLAGS {}", sorted_set(&v)),
                Err(_) => format!("PERMANENTFLAGS {rest}"),
            })
        }
        _ if rest.is_empty() => Some(name),
        _ => Some(format!("{name} {rest}")),
    }
}

/// `OK [CODE] human text` -> `OK [CODE]`: the text is for humans (RFC 3501 §7.1).
fn normalize_condition(text: &str) -> String {
    let (kind, rest) = text.split_once(' ').unwrap_or((text, ""));
    let kind = kind.to_ascii_uppercase();
    match response_code(rest).and_then(|c| normalize_code(&c)) {
        Some(code) => format!("{kind} [{code}]"),
        None => kind,
    }
}

fn normalize_untagged(line: &Line) -> Option<String> {
    let parsed = match parse_untagged(line) {
        Ok(p) => p,
        Err(e) => return Some(format!("<unparsable: {e}> {}", line.text)),
    };
    let rest = line.text.strip_prefix("* ").unwrap_or(&line.text);
    match parsed {
        Untagged::Exists(n) => Some(format!("* {n} EXISTS")),
        Untagged::Recent(n) => Some(format!("* {n} RECENT")),
        Untagged::Expunge(n) => Some(format!("* {n} EXPUNGE")),
        Untagged::Fetch(n, attrs) => {
            let mut items: Vec<String> = attrs
                .iter()
                .map(|(name, value)| match name.as_str() {
                    "FLAGS" => format!("FLAGS {}", sorted_set(value)),
                    "MODSEQ" => "MODSEQ (<modseq>)".to_string(),
                    "INTERNALDATE" => format!("INTERNALDATE {}", utc_date(value)),
                    "BODY" | "BODYSTRUCTURE" => {
                        format!("{name} {}", rendered(&canonical_body(value)))
                    }
                    _ => format!("{name} {}", rendered(value)),
                })
                .collect();
            // The order of FETCH items is the server's choice (RFC 3501 §7.4.2).
            items.sort();
            Some(format!("* {n} FETCH ({})", items.join(" ")))
        }
        Untagged::Search(mut numbers) => {
            numbers.sort_unstable();
            let list: Vec<String> = numbers.iter().map(u32::to_string).collect();
            Some(
                format!("* SEARCH {}", list.join(" "))
                    .trim_end()
                    .to_string(),
            )
        }
        // SELECT's `OK [HIGHESTMODSEQ]` and `OK [MAILBOXID]`: RFC 7162 §3.1.2.1 and RFC 8474
        // §4.2 ask for them on every SELECT, which Yubin does; Dovecot 2.3 has no OBJECTID and
        // sends HIGHESTMODSEQ only once CONDSTORE is enabled, so they are not compared.
        Untagged::Cond { .. }
            if response_code(rest.split_once(' ').map_or("", |r| r.1)).is_some_and(|c| {
                let name = c.split(' ').next().unwrap_or("").to_ascii_uppercase();
                name == "HIGHESTMODSEQ" || name == "MAILBOXID"
            }) =>
        {
            None
        }
        Untagged::Cond { .. } => Some(format!("* {}", normalize_condition(rest))),
        Untagged::Data(word) => {
            let tail = rest.split_once(' ').map_or("", |r| r.1);
            let mut p = Parser::new(tail, &line.literals);
            let values = match p.values() {
                Ok(v) => v,
                Err(e) => return Some(format!("<unparsable: {e}> {}", line.text)),
            };
            match word.as_str() {
                "CAPABILITY" | "ID" => None,
                "FLAGS" => Some(format!(
                    "* FLAGS {}",
                    values.first().map(sorted_set).unwrap_or_default()
                )),
                "LIST" | "LSUB" if values.len() >= 3 => {
                    // \Marked and \Unmarked are optional hints (RFC 3501 §7.2.2).
                    let attributes = match &values[0] {
                        Value::List(items) => Value::List(
                            items
                                .iter()
                                .filter(|a| {
                                    let a = rendered(a).to_ascii_lowercase();
                                    a != "\\marked" && a != "\\unmarked"
                                })
                                .cloned()
                                .collect(),
                        ),
                        other => other.clone(),
                    };
                    Some(format!(
                        "* {word} {} {} {}",
                        sorted_set(&attributes),
                        rendered(&values[1]),
                        mailbox_name(&values[2])
                    ))
                }
                "STATUS" if values.len() == 2 => {
                    let mut items = Vec::new();
                    if let Value::List(list) = &values[1] {
                        for pair in list.chunks(2) {
                            let name = rendered(&pair[0]).to_ascii_uppercase();
                            let value = pair.get(1).map(rendered).unwrap_or_default();
                            items.push(match name.as_str() {
                                "UIDVALIDITY" => "UIDVALIDITY <uidvalidity>".to_string(),
                                "HIGHESTMODSEQ" => "HIGHESTMODSEQ <modseq>".to_string(),
                                _ => format!("{name} {value}"),
                            });
                        }
                    }
                    items.sort();
                    Some(format!(
                        "* STATUS {} ({})",
                        mailbox_name(&values[0]),
                        items.join(" ")
                    ))
                }
                _ => {
                    let parts: Vec<String> = values.iter().map(rendered).collect();
                    Some(
                        format!("* {word} {}", parts.join(" "))
                            .trim_end()
                            .to_string(),
                    )
                }
            }
        }
    }
}

/// A run of EXPUNGE responses as the set of sequence numbers (before the run) it removes: `4, 3`
/// and `3, 3` remove the same two messages, and the order is the server's (RFC 3501 §7.4.1).
fn canonical_expunges(lines: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut run: Vec<u32> = Vec::new();
    let flush = |run: &mut Vec<u32>, out: &mut Vec<String>| {
        if run.is_empty() {
            return;
        }
        // Map each announced number back to the numbering before the run.
        let mut removed: Vec<u32> = Vec::new();
        for &n in run.iter() {
            let mut original = n;
            let mut sorted = removed.clone();
            sorted.sort_unstable();
            for r in sorted {
                if r <= original {
                    original += 1;
                }
            }
            removed.push(original);
        }
        removed.sort_unstable();
        let list: Vec<String> = removed.iter().map(u32::to_string).collect();
        out.push(format!("* EXPUNGE of {}", list.join(",")));
        run.clear();
    };
    for line in lines {
        let n = line
            .strip_prefix("* ")
            .and_then(|r| r.strip_suffix(" EXPUNGE"))
            .and_then(|n| n.parse::<u32>().ok());
        match n {
            Some(n) => run.push(n),
            None => {
                flush(&mut run, &mut out);
                out.push(line);
            }
        }
    }
    flush(&mut run, &mut out);
    out
}

fn normalize(command: &str, lines: &[Line], tagged: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        if line.text.starts_with('+') {
            out.push("+".to_string());
        } else if let Some(n) = normalize_untagged(line) {
            out.push(n);
        }
    }
    let mut out = canonical_expunges(out);
    let verb = command
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    if verb == "SELECT" || verb == "EXAMINE" {
        // RFC 3501 §6.3.1 lists the untagged responses of SELECT without an order.
        out.sort();
    } else {
        // LIST/LSUB order is unspecified (RFC 3501 §6.3.8): sort each run of them.
        let mut i = 0;
        while i < out.len() {
            let is_list = |s: &String| s.starts_with("* LIST ") || s.starts_with("* LSUB ");
            if is_list(&out[i]) {
                let start = i;
                while i < out.len() && is_list(&out[i]) {
                    i += 1;
                }
                out[start..i].sort();
            } else {
                i += 1;
            }
        }
    }
    let (tag, status) = tagged.split_once(' ').unwrap_or((tagged, ""));
    out.push(format!("{tag} {}", normalize_condition(status)));
    out
}

/// Removes from both transcripts of one step what one server may send and the other may leave
/// out, each case with the RFC text that makes it optional.
fn reconcile(
    command: &str,
    mut d: Vec<String>,
    mut y: Vec<String>,
    yubin_has_qresync: bool,
) -> (Vec<String>, Vec<String>) {
    let verb = command
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    let drop_both = |d: &mut Vec<String>, y: &mut Vec<String>, what: &dyn Fn(&str) -> bool| {
        d.retain(|l| !what(l));
        y.retain(|l| !what(l));
    };
    // FLAGS / PERMANENTFLAGS after a STORE that made a new keyword: RFC 9051 §7.3.5 requires
    // the system flags at a minimum; announcing new keywords is the server's choice.
    if verb != "SELECT" && verb != "EXAMINE" {
        drop_both(&mut d, &mut y, &|l| {
            l.starts_with("* FLAGS ") || l.starts_with("* OK [PERMANENTFLAGS ")
        });
    }
    // [CLOSED] belongs to QRESYNC (RFC 7162 §3.2.11), which Yubin does not advertise (yet).
    if !yubin_has_qresync {
        drop_both(&mut d, &mut y, &|l| l == "* OK [CLOSED]");
    }
    // An ENABLED response naming nothing (RFC 5161 §3.2) carries no information.
    drop_both(&mut d, &mut y, &|l| l == "* ENABLED");
    // RECENT updates (RFC 3501 §7.3.2) accompany a size change; a server may leave out one
    // that repeats the count or follows an EXPUNGE. Compared only when both send them.
    let recent = |l: &str| l.starts_with("* ") && l.ends_with(" RECENT");
    let d_recent: Vec<&String> = d.iter().filter(|l| recent(l)).collect();
    let y_recent: Vec<&String> = y.iter().filter(|l| recent(l)).collect();
    if verb != "SELECT" && verb != "EXAMINE" && (d_recent.is_empty() || y_recent.is_empty()) {
        drop_both(&mut d, &mut y, &|l| recent(l));
    }
    // An RFC 5530 code on a NO/BAD where the other server gives none.
    if let (Some(dl), Some(yl)) = (d.last().cloned(), y.last().cloned()) {
        let strip = |l: &str| -> Option<String> {
            let (tag, rest) = l.split_once(' ')?;
            let (kind, code) = rest.split_once(" [")?;
            let name = code.trim_end_matches(']').split(' ').next()?;
            ((kind == "NO" || kind == "BAD") && OPTIONAL_CODES.contains(&name))
                .then(|| format!("{tag} {kind}"))
        };
        if let Some(stripped) = strip(&yl)
            && stripped == dl
        {
            *y.last_mut().expect("tagged") = stripped;
        } else if let Some(stripped) = strip(&dl)
            && stripped == yl
        {
            *d.last_mut().expect("tagged") = stripped;
        }
    }
    (d, y)
}

// ---------------------------------------------------------------------------------------------

fn script_files() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(scripts_dir())
        .expect("imap_scripts")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "imap"))
        .map(|p| {
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("script name")
                .to_string();
            let text = std::fs::read_to_string(&p).expect("script");
            (name, text)
        })
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_answer_like_dovecot() {
    let scripts = script_files();
    assert!(scripts.len() >= 5, "the scripts are there");
    // One account per script, so every script starts from an empty INBOX on both servers.
    let users: Vec<String> = scripts
        .iter()
        .map(|(name, _)| format!("diff-{name}"))
        .collect();
    let dovecot = Dovecot::start(&users);
    let data = tempfile::tempdir().expect("tempdir");
    let yubin = start_dev(data.path());
    for user in &users {
        common::yubin_user(yubin.addr("http"), &["add", user, "--password", PASSWORD]);
    }

    let mut probe = Imap::login(yubin.addr("imap"), &users[0], PASSWORD).await;
    let capabilities = probe.ok("CAPABILITY").await;
    let yubin_has_qresync = capabilities.find("QRESYNC").is_some();
    probe.run("LOGOUT").await;

    let mut report = String::new();
    let mut differing = 0;
    let mut compared = 0;
    for ((name, text), user) in scripts.iter().zip(&users) {
        let steps = parse_script(text);
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        let labels: Vec<String> = steps
            .iter()
            .map(|s| {
                let n = seen.entry(s.text.as_str()).or_default();
                *n += 1;
                if *n == 1 {
                    s.text.clone()
                } else {
                    format!("{}#{n}", s.text)
                }
            })
            .collect();
        let theirs = run_script(dovecot.addr, user, &steps).await;
        let ours = run_script(yubin.addr("imap"), user, &steps).await;
        for ((step, label), (d, y)) in steps.iter().zip(&labels).zip(theirs.iter().zip(&ours)) {
            if step.sleep.is_some() {
                continue;
            }
            compared += 1;
            let (d, y) = reconcile(&step.text, d.clone(), y.clone(), yubin_has_qresync);
            if d == y {
                continue;
            }
            if let Some((_, _, why)) = ALLOWED
                .iter()
                .find(|(s, c, _)| *s == name.as_str() && c == label)
            {
                println!("allowed difference in {name}: {label} ({why})");
                continue;
            }
            differing += 1;
            let _ = writeln!(report, "\n[{name}] session {}: {label}", step.session + 1);
            for l in &d {
                let _ = writeln!(report, "    dovecot: {l}");
            }
            for l in &y {
                let _ = writeln!(report, "    yubin:   {l}");
            }
        }
    }
    println!("compared {compared} commands; {differing} differ");
    assert!(
        differing == 0,
        "{differing} of {compared} commands answer differently from Dovecot:{report}"
    );
}

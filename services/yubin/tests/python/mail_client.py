#!/usr/bin/env python3
"""A real mail client session against Yubin, with Python's imaplib.

populate: log in as demo, create folders, append 100 real-looking messages (attachments, UTF-8 and
ISO-2022-JP headers), read every one back byte-identical, flag, copy, move, expunge, and write the
resulting state (per mailbox: message digests in order, flags) to STATE.
verify: log in again (e.g. after a restart) and check the server still has exactly STATE.
"""
import email.mime.application
import email.mime.multipart
import email.mime.text
import email.header
import email.utils
import hashlib
import imaplib
import json
import re
import sys

USER, PASSWORD = "demo", "demo"
MAILBOXES = ["INBOX", "Archive", "Projects/2026"]


def make_message(n):
    msg = email.mime.multipart.MIMEMultipart()
    msg["From"] = email.utils.formataddr((str(email.header.Header("Élodie Dupré", "utf-8")), "elodie@example.org"))
    msg["To"] = "demo@example.com"
    if n % 3 == 0:
        msg["Subject"] = email.header.Header("日本語の件名 %d" % n, "iso-2022-jp")
    else:
        msg["Subject"] = email.header.Header("Rapport numéro %d" % n, "utf-8")
    msg["Date"] = email.utils.formatdate(1_780_000_000 + n * 3600, localtime=False)
    msg["Message-ID"] = "<py%d@example.org>" % n
    msg.attach(email.mime.text.MIMEText("Bonjour %d — voilà le rapport. 郵便\n" % n, "plain", "utf-8"))
    if n % 2 == 0:
        payload = bytes((i * 31 + n) % 256 for i in range(2000 + n * 50))
        att = email.mime.application.MIMEApplication(payload, Name="data%d.bin" % n)
        att["Content-Disposition"] = 'attachment; filename="data%d.bin"' % n
        msg.attach(att)
    raw = msg.as_bytes()
    # IMAP messages use CRLF line ends (RFC 5322).
    return re.sub(rb"\r?\n", b"\r\n", raw)


def digest(b):
    return hashlib.sha256(b).hexdigest()


def imap_name(name):
    return '"%s"' % name


def check(typ, data, what):
    if typ != "OK":
        raise SystemExit("%s failed: %s %r" % (what, typ, data))
    return data


def mailbox_state(conn, name):
    typ, data = conn.select(imap_name(name), readonly=True)
    check(typ, data, "select " + name)
    count = int(data[0])
    if count == 0:
        return {"digests": [], "flags": []}
    typ, data = conn.fetch("1:*", "(FLAGS BODY.PEEK[])")
    check(typ, data, "fetch " + name)
    digests, flags = [], []
    for item in data:
        if isinstance(item, tuple):
            digests.append(digest(item[1]))
            m = re.search(rb"FLAGS \(([^)]*)\)", item[0])
            flags.append(sorted(m.group(1).decode().split()) if m else [])
    return {"digests": digests, "flags": flags}


def populate(host, port, state_path):
    conn = imaplib.IMAP4(host, port)
    check(*conn.login(USER, PASSWORD), "login")
    for name in MAILBOXES[1:]:
        check(*conn.create(imap_name(name)), "create " + name)
    sent = []
    for n in range(100):
        raw = make_message(n)
        sent.append(raw)
        typ, data = conn.append("INBOX", None, imaplib.Time2Internaldate(1_780_000_000 + n), raw)
        check(typ, data, "append %d" % n)
    typ, data = conn.select("INBOX")
    check(typ, data, "select")
    assert int(data[0]) == 100, data
    for i, raw in enumerate(sent, start=1):
        typ, data = conn.fetch(str(i), "(BODY.PEEK[])")
        check(typ, data, "fetch %d" % i)
        assert data[0][1] == raw, "message %d differs after the round trip" % i
    check(*conn.store("1:10", "+FLAGS", "(\\Flagged)"), "store")
    typ, data = conn.search(None, "FLAGGED")
    assert data[0].split() == [str(i).encode() for i in range(1, 11)], data
    check(*conn.copy("1:20", "Archive"), "copy")
    typ, data = conn._simple_command("MOVE", "21:30", imap_name("Projects/2026"))
    check(typ, data, "move")
    # MOVE reports each moved message as an untagged EXPUNGE (RFC 6851 §3.3); imaplib keeps them.
    typ, moved = conn.response("EXPUNGE")
    assert moved == [b"21"] * 10, moved
    check(*conn.store("21:25", "+FLAGS", "(\\Deleted)"), "store deleted")
    typ, data = conn.expunge()
    check(typ, data, "expunge")
    assert len([d for d in data if d]) == 5, data
    state = {name: mailbox_state(conn, name) for name in MAILBOXES}
    assert len(state["INBOX"]["digests"]) == 85, len(state["INBOX"]["digests"])
    assert len(state["Archive"]["digests"]) == 20
    assert len(state["Projects/2026"]["digests"]) == 10
    assert state["Archive"]["digests"] == [digest(m) for m in sent[:20]]
    assert state["Projects/2026"]["digests"] == [digest(m) for m in sent[20:30]]
    assert all("\\Flagged" in f for f in state["Archive"]["flags"][:10])
    conn.logout()
    with open(state_path, "w") as f:
        json.dump(state, f)
    print("populated: INBOX 85, Archive 20, Projects/2026 10")


def verify(host, port, state_path):
    with open(state_path) as f:
        expected = json.load(f)
    conn = imaplib.IMAP4(host, port)
    check(*conn.login(USER, PASSWORD), "login")
    typ, data = conn.list()
    check(typ, data, "list")
    names = {re.search(rb'"([^"]*)"$', d).group(1).decode() for d in data}
    for name in MAILBOXES:
        assert name in names, (name, names)
        got = mailbox_state(conn, name)
        assert got == expected[name], "mailbox %s differs after restart" % name
    conn.logout()
    print("verified: state identical")


if __name__ == "__main__":
    mode, host, port, state = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    {"populate": populate, "verify": verify}[mode](host, port, state)

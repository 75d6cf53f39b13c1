#!/usr/bin/env python3
"""LMTP delivery as real clients see it.

Python's smtplib.LMTP delivers to Yubin (multi-recipient with a status per recipient, 8-bit, a
several-MiB message); a raw socket sends what smtplib cannot (an explicitly pipelined batch,
BDAT/CHUNKING); then imaplib reads every recipient's copy back and compares it byte for byte.

usage: lmtp_delivery.py HOST LMTP_PORT IMAP_PORT

The caller creates the accounts alice, bob and carol (password: the name followed by "-pw") and
bob's folder "Lists"; their mailboxes must be empty.
"""
import base64
import imaplib
import smtplib
import socket
import sys

HOST, LMTP_PORT, IMAP_PORT = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def fail(why):
    print("FAIL: " + why, file=sys.stderr)
    sys.exit(1)


def check(cond, why):
    if not cond:
        fail(why)


def stored(sender, rcpt, message):
    """What the server must store for one recipient: its trace fields, then the message."""
    return ("Return-Path: <%s>\r\nDelivered-To: %s\r\n" % (sender, rcpt)).encode() + message


EIGHT_BIT = (
    "From: Jürgen <juergen@example.org>\r\n"
    "To: team@example.com\r\n"
    "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= from LMTP\r\n"
    "Message-ID: <lmtp-8bit@example.org>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Grüße aus Köln — 郵便です.\r\n"
    ".a line starting with a dot survives dot-stuffing\r\n"
    "..and one with two\r\n"
).encode("utf-8")


def large_message():
    payload = bytes((i * 131 + 7) % 256 for i in range(4_700_000))
    b64 = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    return (
        b"From: bulk@example.org\r\n"
        b"To: alice@example.com, bob@example.com\r\n"
        b"Subject: large attachment\r\n"
        b"Message-ID: <lmtp-large@example.org>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="XX"\r\n'
        b"\r\n"
        b"--XX\r\n"
        b"Content-Type: text/plain\r\n"
        b"\r\n"
        b"see attachment\r\n"
        b"--XX\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"\r\n" + b64 + b"--XX--\r\n"
    )


PIPELINED = (
    b"From: pipe@example.org\r\n"
    b"Subject: pipelined\r\n"
    b"Message-ID: <lmtp-pipe@example.org>\r\n"
    b"\r\n"
    b"sent in one batch\r\n"
)

CHUNK1 = (
    b"From: chunk@example.org\r\n"
    b"Subject: chunked\r\n"
    b"Message-ID: <lmtp-bdat@example.org>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b".\r\n"  # not an end marker in BDAT, not dot-stuffed
)
CHUNK2 = "zweiter Teil — 第二部\r\n".encode("utf-8")


class Raw:
    """A raw LMTP connection for what smtplib cannot do."""

    def __init__(self):
        self.sock = socket.create_connection((HOST, LMTP_PORT), timeout=60)
        self.buf = b""
        greeting = self.reply()
        check(greeting[0].startswith(b"220 "), "greeting %r" % greeting)

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            more = self.sock.recv(65536)
            if not more:
                fail("connection closed; buffered %r" % self.buf)
            self.buf += more
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        lines = [self.line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.line())
        return lines

    def expect(self, prefix, what):
        r = self.reply()
        check(r[-1].startswith(prefix), "%s: expected %r, got %r" % (what, prefix, r))
        return r


def smtplib_deliveries():
    c = smtplib.LMTP(HOST, LMTP_PORT, timeout=120)
    code, _ = c.ehlo("mx.test")  # LMTP's ehlo sends LHLO
    check(code == 250, "LHLO answered %d" % code)
    for ext in ["pipelining", "8bitmime", "enhancedstatuscodes", "size", "chunking"]:
        check(c.has_extn(ext), "LHLO does not advertise %s: %r" % (ext, c.esmtp_features))
    check(int(c.esmtp_features["size"]) >= 10 * 1024 * 1024, "SIZE too small")

    # Several recipients, one unknown: each gets its own status, after DATA one reply per
    # accepted recipient (RFC 2033 §4.2). smtplib's sendmail reads only one reply after DATA,
    # so the per-recipient replies are read here with getreply().
    code, msg = c.mail("sender@example.org", ["BODY=8BITMIME", "SIZE=%d" % len(EIGHT_BIT)])
    check(code == 250, "MAIL: %d %r" % (code, msg))
    accepted = []
    for rcpt, want in [
        ("alice@example.com", 250),
        ("nobody@example.com", 550),
        ("bob+lists@example.com", 250),
        ("carol@example.com", 250),
    ]:
        code, msg = c.rcpt(rcpt)
        check(code == want, "RCPT %s: %d %r" % (rcpt, code, msg))
        if code == 550:
            check(msg.startswith(b"5.1.1"), "unknown user code: %r" % msg)
        if code == 250:
            accepted.append(rcpt)
    replies = [c.data(EIGHT_BIT)] + [c.getreply() for _ in accepted[1:]]
    for rcpt, (code, msg) in zip(accepted, replies):
        check(code == 250 and msg.startswith(b"2.0.0"), "DATA for %s: %d %r" % (rcpt, code, msg))
        check(rcpt.encode() in msg, "reply for %s names it: %r" % (rcpt, msg))

    # A message of several MiB (spooled to disk on the server).
    big = large_message()
    check(c.mail("bulk@example.org", ["SIZE=%d" % len(big)])[0] == 250, "MAIL large")
    for rcpt in ["alice@example.com", "bob@example.com"]:
        check(c.rcpt(rcpt)[0] == 250, "RCPT %s for the large message" % rcpt)
    replies = [c.data(big), c.getreply()]
    check(all(code == 250 for code, _ in replies), "large message: %r" % replies)
    c.quit()
    return big


def raw_deliveries():
    r = Raw()
    # PIPELINING (RFC 2920): the whole envelope and DATA in one write.
    r.send(
        b"LHLO mx.test\r\nMAIL FROM:<pipe@example.org>\r\nRCPT TO:<alice@example.com>\r\n"
        b"RCPT TO:<ghost@example.com>\r\nRCPT TO:<carol@example.com>\r\nDATA\r\n"
    )
    r.expect(b"250 ", "LHLO")
    r.expect(b"250 2.1.0", "MAIL")
    r.expect(b"250 2.1.5", "RCPT alice")
    r.expect(b"550 5.1.1", "RCPT ghost")
    r.expect(b"250 2.1.5", "RCPT carol")
    r.expect(b"354", "DATA")
    r.send(PIPELINED + b".\r\n")
    r.expect(b"250 2.0.0", "delivery to alice")
    r.expect(b"250 2.0.0", "delivery to carol")

    # CHUNKING (RFC 3030): two BDAT chunks pipelined with the envelope; octets are sent as
    # they are (no dot-stuffing), the LAST chunk gets one reply per recipient.
    r.send(
        b"MAIL FROM:<chunk@example.org> BODY=8BITMIME\r\nRCPT TO:<bob@example.com>\r\n"
        + b"BDAT %d\r\n" % len(CHUNK1)
        + CHUNK1
        + b"BDAT %d LAST\r\n" % len(CHUNK2)
        + CHUNK2
    )
    r.expect(b"250 2.1.0", "MAIL (BDAT)")
    r.expect(b"250 2.1.5", "RCPT bob (BDAT)")
    r.expect(b"250 2.0.0", "first chunk")
    r.expect(b"250 2.0.0", "BDAT LAST for bob")
    r.send(b"QUIT\r\n")
    r.expect(b"221", "QUIT")


def bodies(user, mailbox):
    imap = imaplib.IMAP4(HOST, IMAP_PORT)
    imap.login(user, user + "-pw")
    typ, _ = imap.select(mailbox, readonly=True)
    check(typ == "OK", "select %s/%s" % (user, mailbox))
    typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
    check(typ == "OK", "fetch %s/%s" % (user, mailbox))
    out = [part[1] for part in data if isinstance(part, tuple)]
    imap.logout()
    return out


def main():
    big = smtplib_deliveries()
    raw_deliveries()
    chunked = CHUNK1 + CHUNK2
    want = {
        ("alice", "INBOX"): [
            stored("sender@example.org", "alice@example.com", EIGHT_BIT),
            stored("bulk@example.org", "alice@example.com", big),
            stored("pipe@example.org", "alice@example.com", PIPELINED),
        ],
        ("bob", "INBOX"): [
            stored("bulk@example.org", "bob@example.com", big),
            stored("chunk@example.org", "bob@example.com", chunked),
        ],
        ("bob", "Lists"): [stored("sender@example.org", "bob+lists@example.com", EIGHT_BIT)],
        ("carol", "INBOX"): [
            stored("sender@example.org", "carol@example.com", EIGHT_BIT),
            stored("pipe@example.org", "carol@example.com", PIPELINED),
        ],
    }
    for (user, mailbox), expected in want.items():
        got = bodies(user, mailbox)
        if got != expected:
            fail(
                "%s/%s holds %d messages %r, expected %d %r"
                % (
                    user,
                    mailbox,
                    len(got),
                    [g[:120] for g in got],
                    len(expected),
                    [e[:120] for e in expected],
                )
            )
    print("ok: every recipient holds exactly its copies")


main()

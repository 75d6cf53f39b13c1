#!/usr/bin/env python3
"""Authentication against Yubin with Python's imaplib, as a real client does it.

usage: auth_client.py HOST IMAP_PORT IMAPS_PORT USER PASSWORD GOOD_TOKEN BAD_TOKEN

- plain IMAP: the capabilities, LOGIN, AUTHENTICATE PLAIN and LOGIN (imaplib's login() and
  authenticate() with its base64 handling);
- implicit TLS (the certificate is yubin dev's self-signed one, so it is not verified):
  AUTHENTICATE OAUTHBEARER and XOAUTH2 with GOOD_TOKEN; BAD_TOKEN gets RFC 7628's error
  challenge, which the client acknowledges with %x01 before the NO.
"""
import imaplib
import json
import ssl
import sys

host, imap_port, imaps_port, user, password, good, bad = sys.argv[1:8]


def check(cond, what):
    if not cond:
        raise SystemExit("FAILED: " + what)


m = imaplib.IMAP4(host, int(imap_port))
caps = m.capabilities
for cap in ("AUTH=PLAIN", "AUTH=LOGIN", "AUTH=OAUTHBEARER", "AUTH=XOAUTH2"):
    check(cap in caps, "%s advertised on loopback in dev mode: %r" % (cap, caps))
typ, _ = m.login(user, password)
check(typ == "OK", "LOGIN")
m.logout()

m = imaplib.IMAP4(host, int(imap_port))
typ, _ = m.authenticate("PLAIN", lambda _: ("\0%s\0%s" % (user, password)).encode())
check(typ == "OK", "AUTHENTICATE PLAIN")
m.logout()

m = imaplib.IMAP4(host, int(imap_port))
answers = iter([user.encode(), password.encode()])
typ, _ = m.authenticate("LOGIN", lambda _: next(answers))
check(typ == "OK", "AUTHENTICATE LOGIN")
m.logout()

context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE


def oauthbearer(token):
    return ("n,a=%s,\x01host=%s\x01port=%s\x01auth=Bearer %s\x01\x01" % (user, host, imaps_port, token)).encode()


m = imaplib.IMAP4_SSL(host, int(imaps_port), ssl_context=context)
check(m.sock.version() in ("TLSv1.2", "TLSv1.3"), "TLS version %s" % m.sock.version())
typ, _ = m.authenticate("OAUTHBEARER", lambda _: oauthbearer(good))
check(typ == "OK", "AUTHENTICATE OAUTHBEARER")
typ, data = m.select("INBOX")
check(typ == "OK", "SELECT after OAUTHBEARER")
m.logout()

m = imaplib.IMAP4_SSL(host, int(imaps_port), ssl_context=context)
typ, _ = m.authenticate("XOAUTH2", lambda _: ("user=%s\x01auth=Bearer %s\x01\x01" % (user, good)).encode())
check(typ == "OK", "AUTHENTICATE XOAUTH2")
m.logout()

m = imaplib.IMAP4_SSL(host, int(imaps_port), ssl_context=context)
challenges = []


def bad_token(challenge):
    if not challenges:
        challenges.append(challenge)
        return oauthbearer(bad)
    # The error challenge: RFC 7628 §3.2.3 says to answer with a single %x01.
    challenges.append(challenge)
    return b"\x01"


try:
    m.authenticate("OAUTHBEARER", bad_token)
    raise SystemExit("FAILED: a bad token was accepted")
except imaplib.IMAP4.error as e:
    check("AUTHENTICATIONFAILED" in str(e), "the failure says AUTHENTICATIONFAILED: %s" % e)
check(len(challenges) == 2, "an error challenge was sent: %r" % challenges)
error = json.loads(challenges[1])
check(error["status"] == "invalid_token", "error challenge %r" % error)
m.logout()
print("ok")

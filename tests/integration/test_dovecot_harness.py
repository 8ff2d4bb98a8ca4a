"""test_dovecot_harness - proves tests/integration/dovecot.py, which the IMAP,
POP3 and end-to-end tests rely on: TLS (STARTTLS/STLS and implicit) verifies
against ca_file and not against bad_ca_file; LOGIN, AUTHENTICATE PLAIN and
XOAUTH2; IDLE and MOVE; POP3 UIDL/RETR/DELE; append/messages/flags; the
UIDVALIDITY reset; stop/start; a clean exit; and the CLI of the C tests.
Python 3.11 standard library only."""

import base64
import contextlib
import hashlib
import imaplib
import io
import json
import os
import poplib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from unittest import mock

import dovecot
from dovecot import Dovecot

SCRIPT = Path(dovecot.__file__).resolve()


# mail - a small RFC 5322 message (CRLF) with SUBJECT
def mail(subject, body="Hello.\r\n"):
    return (f"From: Customer <customer@example.com>\r\nTo: support@example.com\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '-')}@example.com>\r\n"
            f"\r\n{body}").encode()


# tls - a client context trusting only CAFILE
def tls(cafile):
    return ssl.create_default_context(cafile=cafile)


# xoauth2 - the XOAUTH2 initial response for USER and TOKEN
def xoauth2(user, token):
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


# instance_pids - ids of live processes titled dovecot-INSTANCE/... (read
# from /proc here, not through the harness under test)
def instance_pids(instance):
    prefix = f"dovecot-{instance}/".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "cmdline").read_bytes().startswith(prefix):
                    pids.append(int(entry.name))
    return pids


# status_validity - UIDVALIDITY of FOLDER by STATUS (what a polling client sees)
def status_validity(imap, folder):
    data = imap.status(folder, "(UIDVALIDITY)")[1]
    return int(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1))


# shut - close an imaplib or poplib connection, whatever state it is in
def shut(conn):
    with contextlib.suppress(Exception):
        (conn.shutdown if isinstance(conn, imaplib.IMAP4) else conn.close)()


# refuses - whether nothing listens on PORT of 127.0.0.1
def refuses(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return False
    except ConnectionRefusedError:
        return True


class ServerTest(unittest.TestCase):
    """One default server shared by the tests; each test uses its own folders."""

    @classmethod
    def setUpClass(cls):
        cls.dc = Dovecot()
        cls.dc.open()
        cls.addClassCleanup(cls.dc.close)

    def imap(self, user="support"):
        imap = imaplib.IMAP4(self.dc.host, self.dc.imap_port, timeout=30)
        self.addCleanup(shut, imap)
        if user:
            imap.login(user, self.dc.users[user])
        return imap

    def pop3(self):
        pop = poplib.POP3(self.dc.host, self.dc.pop3_port, timeout=30)
        self.addCleanup(shut, pop)
        return pop

    def test_default_users_and_ports(self):
        dc = self.dc
        self.assertEqual(dc.users, {"support": "secret", "sales": "secret2"})
        ports = [dc.imap_port, dc.imaps_port, dc.pop3_port, dc.pop3s_port]
        self.assertEqual(len(set(ports)), 4)
        self.assertTrue(all(port > 1024 for port in ports), ports)
        self.assertEqual(dc.host, "127.0.0.1")
        self.assertEqual(self.imap("sales").noop()[0], "OK")

    def test_starttls_verifies_against_ca_file_only(self):
        imap = self.imap(user=None)
        self.assertIn("STARTTLS", imap.capabilities)
        with self.assertRaises(ssl.SSLCertVerificationError):
            imap.starttls(tls(self.dc.bad_ca_file))
        imap = self.imap(user=None)
        imap.starttls(tls(self.dc.ca_file))
        self.assertEqual(imap.login("support", "secret")[0], "OK")
        imap.logout()

        pop = self.pop3()
        self.assertIn("STLS", pop.capa())
        with self.assertRaises(ssl.SSLCertVerificationError):
            pop.stls(tls(self.dc.bad_ca_file))
        pop = self.pop3()
        pop.stls(tls(self.dc.ca_file))
        pop.user("support")
        self.assertTrue(pop.pass_("secret").startswith(b"+OK"))
        pop.quit()

    def test_implicit_tls_verifies_against_ca_file_only(self):
        dc = self.dc
        with self.assertRaises(ssl.SSLCertVerificationError):
            imaplib.IMAP4_SSL(dc.host, dc.imaps_port, ssl_context=tls(dc.bad_ca_file), timeout=30)
        with self.assertRaises(ssl.SSLCertVerificationError):
            poplib.POP3_SSL(dc.host, dc.pop3s_port, context=tls(dc.bad_ca_file), timeout=30)
        imap = imaplib.IMAP4_SSL(dc.host, dc.imaps_port, ssl_context=tls(dc.ca_file), timeout=30)
        self.assertEqual(imap.login("support", "secret")[0], "OK")
        imap.logout()
        pop = poplib.POP3_SSL(dc.host, dc.pop3s_port, context=tls(dc.ca_file), timeout=30)
        pop.user("sales")
        self.assertTrue(pop.pass_("secret2").startswith(b"+OK"))
        pop.quit()

    def test_certificate_names_localhost_and_127_0_0_1_only(self):
        for name, ok in (("localhost", True), ("127.0.0.1", True), ("mail.example.com", False)):
            with self.subTest(name=name), socket.create_connection(
                    (self.dc.host, self.dc.imaps_port), timeout=30) as sock:
                if ok:
                    with tls(self.dc.ca_file).wrap_socket(sock, server_hostname=name) as conn:
                        self.assertTrue(conn.recv(100).startswith(b"* OK"))
                else:
                    with self.assertRaises(ssl.SSLCertVerificationError):
                        tls(self.dc.ca_file).wrap_socket(sock, server_hostname=name)

    def test_login_authenticate_plain_and_xoauth2(self):
        dc = self.dc
        self.assertEqual(self.imap(user=None).login("support", "secret")[0], "OK")
        plain = self.imap(user=None).authenticate("PLAIN", lambda _: b"\0support\0secret")
        self.assertEqual(plain[0], "OK")
        token = dc.oauth_token("support")
        self.assertNotEqual(token, dc.users["support"])
        self.assertEqual(self.imap(user=None).authenticate(
            "XOAUTH2", lambda _: xoauth2("support", token))[0], "OK")
        self.assertNotEqual(dc.oauth_token("sales"), token)

        refused = [
            ("LOGIN, wrong password", lambda i: i.login("support", "wrong")),
            ("LOGIN, unknown user", lambda i: i.login("nobody", "secret")),
            ("LOGIN with the token", lambda i: i.login("support", token)),
            ("PLAIN, wrong password", lambda i: i.authenticate("PLAIN", lambda _: b"\0support\0x")),
            ("XOAUTH2, wrong token", lambda i: i.authenticate(
                "XOAUTH2", lambda _: xoauth2("support", token + "x"))),
            ("XOAUTH2 with the password", lambda i: i.authenticate(
                "XOAUTH2", lambda _: xoauth2("support", "secret"))),
            ("XOAUTH2, another user's token", lambda i: i.authenticate(
                "XOAUTH2", lambda _: xoauth2("support", dc.oauth_token("sales")))),
        ]
        for what, attempt in refused:
            with self.subTest(what), self.assertRaises(imaplib.IMAP4.error):
                attempt(self.imap(user=None))
        self.assertIn("Login: user=<support>, method=XOAUTH2", dc.log())

    def test_pop3_user_pass_and_xoauth2(self):
        dc = self.dc
        pop = self.pop3()
        self.assertEqual(set(pop.capa()["SASL"]), {"PLAIN", "LOGIN", "XOAUTH2"})
        pop.user("sales")
        with self.assertRaises(poplib.error_proto):
            pop.pass_("wrong")
        pop = self.pop3()
        b64 = base64.b64encode(xoauth2("sales", dc.oauth_token("sales"))).decode()
        self.assertTrue(pop._shortcmd(f"AUTH XOAUTH2 {b64}").startswith(b"+OK"))
        pop.quit()

    def test_capabilities_include_idle_and_move(self):
        imap = self.imap(user=None)
        self.assertTrue({"AUTH=PLAIN", "AUTH=XOAUTH2", "STARTTLS"} <= set(imap.capabilities))
        self.assertNotIn("LOGINDISABLED", imap.capabilities)
        imap.login("support", "secret")
        caps = imap.capability()[1][0].decode().split()
        self.assertIn("IDLE", caps)
        self.assertIn("MOVE", caps)

    def test_idle_and_move_can_be_hidden_and_users_chosen(self):
        default = self.imap().capability()[1][0].decode().split()
        with Dovecot(users={"ops": "pw"}, idle=False, move=False) as other:
            imap = imaplib.IMAP4(other.host, other.imap_port, timeout=30)
            self.assertNotIn("IDLE", imap.capabilities)
            with self.assertRaises(imaplib.IMAP4.error):
                imap.login("support", "secret")
            shut(imap)
            imap = imaplib.IMAP4(other.host, other.imap_port, timeout=30)
            imap.login("ops", "pw")
            hidden = imap.capability()[1][0].decode().split()
            imap.logout()
        # The harness names every other capability itself: it must match Dovecot's.
        self.assertEqual(sorted(hidden), sorted(set(default) - {"IDLE", "MOVE"}))

    def test_idle_reports_new_mail(self):
        self.dc.append("support", "IdleBox", mail("first"))
        imap = self.imap()
        imap.select('"IdleBox"')
        tag = imap._new_tag()
        imap.send(tag + b" IDLE\r\n")
        self.assertTrue(imap.readline().startswith(b"+"))
        self.dc.append("support", "IdleBox", mail("second"))
        imap.sock.settimeout(30)
        while not (line := imap.readline()).endswith(b"EXISTS\r\n"):
            self.assertTrue(line.startswith(b"* "), line)
        self.assertEqual(line, b"* 2 EXISTS\r\n")
        imap.send(b"DONE\r\n")
        while not (line := imap.readline()).startswith(tag):
            pass
        self.assertIn(b" OK ", line)

    def test_move(self):
        uid = self.dc.append("support", "MoveFrom", mail("moving"), flags=("\\Seen",))
        self.dc.append("support", "MoveTo", mail("already there"))
        imap = self.imap()
        imap.select('"MoveFrom"')
        self.assertEqual(imap.uid("MOVE", str(uid), '"MoveTo"')[0], "OK")
        self.assertEqual(self.dc.messages("support", "MoveFrom"), [])
        moved = self.dc.messages("support", "MoveTo")
        self.assertEqual([(flags, raw) for _, flags, raw in moved],
                         [(set(), mail("already there")), ({"\\Seen"}, mail("moving"))])

    def test_pop3_uidl_retr_dele(self):
        dc = self.dc
        body = "Line one.\r\n.starts with a dot\r\n"
        first = dc.append("sales", "INBOX", mail("pop one", body))
        second = dc.append("sales", "INBOX", mail("pop two"))
        validity = dc.uidvalidity("sales", "INBOX")
        pop = self.pop3()
        pop.stls(tls(dc.ca_file))
        pop.user("sales")
        pop.pass_("secret2")
        listing = [line.split() for line in pop.uidl()[1]]
        self.assertEqual(listing, [[b"1", f"{first:08x}{validity:08x}".encode()],
                                   [b"2", f"{second:08x}{validity:08x}".encode()]])
        lines = pop.retr(1)[1]
        self.assertEqual(b"\r\n".join(lines) + b"\r\n", mail("pop one", body))
        pop.dele(1)
        pop.quit()
        self.assertEqual([uid for uid, _, _ in dc.messages("sales", "INBOX")], [second])

    def test_append_messages_flags_round_trip(self):
        dc = self.dc
        folder = 'Flags "quoted" box'
        self.assertNotIn(folder, dc.folders("support"))
        one = dc.append("support", folder, mail("one"), flags=("\\Seen", "\\Flagged", "$Label1"))
        two = dc.append("support", folder, b"Subject: bare LF\n\nbody\n")
        self.assertGreater(two, one)
        self.assertIn(folder, dc.folders("support"))
        self.assertEqual(dc.messages("support", folder), [
            (one, {"\\Seen", "\\Flagged", "$Label1"}, mail("one")),
            (two, set(), b"Subject: bare LF\r\n\r\nbody\r\n")])
        # A client's change shows through messages(); messages() itself changes nothing.
        imap = self.imap()
        imap.select(dovecot._quote(folder))
        imap.uid("STORE", str(two), "+FLAGS", "(\\Answered)")
        imap.logout()
        self.assertEqual(dc.messages("support", folder)[1][1], {"\\Answered"})
        self.assertEqual(dc.messages("support", folder)[1][1], {"\\Answered"})
        box = dc.maildir("support") / f".{folder}"
        self.assertEqual(len(list((box / "cur").iterdir()) + list((box / "new").iterdir())), 2)

    def test_messages_of_empty_and_missing_folders(self):
        self.imap().create('"Empty"')
        self.assertEqual(self.dc.messages("support", "Empty"), [])
        with self.assertRaises(RuntimeError):
            self.dc.messages("support", "No such folder")

    def test_reset_uidvalidity_keeps_messages_and_renumbers(self):
        dc = self.dc
        for folder in ("ResetBox", "INBOX"):
            with self.subTest(folder=folder):
                for n, flags in enumerate([("\\Seen",), (), ("\\Flagged", "$Ticket")]):
                    dc.append("support", folder, mail(f"{folder} reset {n}"), flags=flags)
                before = dc.messages("support", folder)
                old = dc.uidvalidity("support", folder)
                live = self.imap()
                live.select(folder)
                new = dc.reset_uidvalidity("support", folder)
                self.assertNotEqual(new, old)
                self.assertEqual(dc.uidvalidity("support", folder), new)
                self.assertEqual(status_validity(self.imap(), folder), new)
                after = dc.messages("support", folder)
                self.assertEqual([m[1:] for m in after], [m[1:] for m in before])
                old_uids = {m[0] for m in before}
                self.assertFalse(old_uids & {m[0] for m in after}, (before, after))
                with self.assertRaises(imaplib.IMAP4.abort):  # kicked: must reconnect
                    live.noop()
                shut(live)
                later = dc.append("support", folder, mail(f"{folder} after reset"))
                self.assertGreater(later, max(m[0] for m in after))
                self.assertEqual(dc.uidvalidity("support", folder), new)

    def test_log(self):
        self.imap("sales")
        self.assertIn("starting up for imap, pop3", self.dc.log())
        self.assertIn("Login: user=<sales>", self.dc.log())


class LifecycleTest(unittest.TestCase):
    def test_stop_start_keeps_ports_and_data(self):
        with Dovecot() as dc:
            uid = dc.append("support", "INBOX", mail("kept"), flags=("\\Seen",))
            validity = dc.uidvalidity("support", "INBOX")
            ports = (dc.imap_port, dc.imaps_port, dc.pop3_port, dc.pop3s_port)
            live = imaplib.IMAP4(dc.host, dc.imap_port, timeout=30)
            live.login("support", "secret")
            live.select("INBOX")
            dc.stop()
            self.assertEqual(instance_pids(dc.instance), [])
            self.assertTrue(all(refuses(port) for port in ports))
            with self.assertRaises(imaplib.IMAP4.abort):  # its session ended with the server
                live.noop()
            shut(live)
            dc.start()
            self.assertEqual((dc.imap_port, dc.imaps_port, dc.pop3_port, dc.pop3s_port), ports)
            self.assertEqual(dc.messages("support", "INBOX"), [(uid, {"\\Seen"}, mail("kept"))])
            self.assertEqual(dc.uidvalidity("support", "INBOX"), validity)
            imap = imaplib.IMAP4_SSL(dc.host, dc.imaps_port, ssl_context=tls(dc.ca_file), timeout=30)
            self.assertEqual(imap.authenticate(
                "XOAUTH2", lambda _: xoauth2("support", dc.oauth_token("support")))[0], "OK")
            imap.logout()
            self.assertEqual(dc.log().count("starting up for imap, pop3"), 2)

    def test_clean_exit_removes_everything(self):
        with Dovecot() as dc:
            imap = imaplib.IMAP4(dc.host, dc.imap_port, timeout=30)
            imap.login("support", "secret")
            self.assertTrue(instance_pids(dc.instance))
        shut(imap)
        self.assertFalse(dc.dir.exists())
        self.assertEqual(instance_pids(dc.instance), [])
        self.assertTrue(refuses(dc.imap_port))

    def test_failing_block_keeps_directory_and_prints_log(self):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), self.assertRaises(KeyError):
            with Dovecot() as dc:
                raise KeyError("boom")
        self.addCleanup(shutil.rmtree, dc.dir, True)
        self.assertTrue((dc.dir / "dovecot.log").exists())
        self.assertIn("starting up for imap, pop3", err.getvalue())
        self.assertEqual(instance_pids(dc.instance), [])

    def test_bad_user_names_and_passwords_are_refused(self):
        for users in ({"a:b": "pw"}, {"ok": "pass:word"}, {"ok": ""}, {"new\nline": "pw"}):
            with self.subTest(users=users), self.assertRaises(ValueError):
                Dovecot(users=users)

    def test_without_dovecot_a_clear_error_and_exit_77(self):
        with mock.patch.dict(os.environ, {"MB_DOVECOT": "/nonexistent/dovecot"}):
            with self.assertRaisesRegex(dovecot.DovecotUnavailable, "not installed"):
                Dovecot()
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([sys.executable, str(SCRIPT), "serve", "--state-file",
                                   f"{tmp}/state.json"], capture_output=True, text=True, timeout=60,
                                  env=dict(os.environ, MB_DOVECOT="/nonexistent/dovecot"))
            self.assertEqual(proc.returncode, 77, proc.stderr)
            self.assertIn("Dovecot is not installed", proc.stderr)
            self.assertFalse(Path(f"{tmp}/state.json").exists())


class CliTest(unittest.TestCase):
    """The commands the C tests run: serve, append, messages, reset-uidvalidity."""

    def cli(self, *args, input=None):
        proc = subprocess.run([sys.executable, str(SCRIPT), *args], input=input,
                              capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode())
        return proc.stdout.decode()

    def test_serve_append_messages_reset(self):
        tmp = Path(tempfile.mkdtemp(prefix="mbdc-cli-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        state_file = tmp / "state.json"
        errors = tmp / "serve.stderr"
        with open(errors, "wb") as err:
            serve = subprocess.Popen([sys.executable, str(SCRIPT), "serve", "--state-file",
                                      str(state_file), "--users", "support:secret,cli:pw"],
                                     stdout=subprocess.DEVNULL, stderr=err)
        self.addCleanup(lambda: serve.poll() is None and serve.kill())
        deadline = time.monotonic() + 60
        while not state_file.exists():
            self.assertIsNone(serve.poll(), errors.read_text())
            self.assertLess(time.monotonic(), deadline, "serve wrote no state file")
            time.sleep(0.05)
        state = json.loads(state_file.read_text())
        self.assertLessEqual({"host", "imap_port", "imaps_port", "pop3_port", "pop3s_port", "ca_file",
                              "bad_ca_file", "dir", "users", "oauth_tokens"}, set(state))
        self.assertEqual(state["users"], {"support": "secret", "cli": "pw"})
        instance = [line.split(" = ")[1] for line in
                    (Path(state["dir"]) / "dovecot.conf").read_text().splitlines()
                    if line.startswith("instance_name = ")][0]

        imap = imaplib.IMAP4_SSL(state["host"], state["imaps_port"],
                                 ssl_context=tls(state["ca_file"]), timeout=30)
        self.assertEqual(imap.authenticate(
            "XOAUTH2", lambda _: xoauth2("cli", state["oauth_tokens"]["cli"]))[0], "OK")
        imap.logout()
        with self.assertRaises(ssl.SSLCertVerificationError):
            imaplib.IMAP4_SSL(state["host"], state["imaps_port"],
                              ssl_context=tls(state["bad_ca_file"]), timeout=30)

        raw = tmp / "one.eml"
        raw.write_bytes(b"Subject: from the CLI\n\nbody\n")  # LF: stored and sent as CRLF
        crlf = b"Subject: from the CLI\r\n\r\nbody\r\n"
        sf = ["--state-file", str(state_file)]
        # '\\Seen' reaches us with two backslashes from a shell, with one from C
        one = int(self.cli("append", *sf, "cli", "Tickets", str(raw), "--flags", "\\\\Seen"))
        two = int(self.cli("append", *sf, "--flags", "\\Seen \\Flagged", "cli", "Tickets", "-",
                           input=mail("stdin")))
        listed = json.loads(self.cli("messages", *sf, "cli", "Tickets"))
        self.assertEqual(listed, [
            {"uid": one, "flags": ["\\Seen"], "size": len(crlf),
             "sha256": hashlib.sha256(crlf).hexdigest()},
            {"uid": two, "flags": ["\\Flagged", "\\Seen"], "size": len(mail("stdin")),
             "sha256": hashlib.sha256(mail("stdin")).hexdigest()}])

        imap = imaplib.IMAP4(state["host"], state["imap_port"], timeout=30)
        imap.login("cli", "pw")
        old = status_validity(imap, "Tickets")
        imap.logout()
        new = int(self.cli("reset-uidvalidity", *sf, "cli", "Tickets"))
        self.assertNotEqual(new, old)
        imap = imaplib.IMAP4(state["host"], state["imap_port"], timeout=30)
        imap.login("cli", "pw")
        self.assertEqual(status_validity(imap, "Tickets"), new)
        imap.logout()
        relisted = json.loads(self.cli("messages", *sf, "cli", "Tickets"))
        self.assertEqual([{k: m[k] for k in ("flags", "sha256")} for m in relisted],
                         [{k: m[k] for k in ("flags", "sha256")} for m in listed])
        self.assertFalse({m["uid"] for m in relisted} & {one, two})

        serve.send_signal(signal.SIGTERM)
        self.assertEqual(serve.wait(timeout=60), 0, errors.read_text())
        self.assertFalse(state_file.exists())
        self.assertFalse(Path(state["dir"]).exists())
        self.assertEqual(instance_pids(instance), [])
        self.assertTrue(refuses(state["imap_port"]))

    def test_serve_stops_when_its_parent_is_gone(self):
        tmp = Path(tempfile.mkdtemp(prefix="mbdc-cli-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        state_file = tmp / "state.json"
        # A parent that starts `serve`, waits for the state file and exits
        # without SIGTERM, as a crashing C test would.
        parent = f"""
import pathlib, subprocess, sys, time
subprocess.Popen([sys.executable, {str(SCRIPT)!r}, "serve", "--state-file", {str(state_file)!r}],
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while not pathlib.Path({str(state_file)!r}).exists():
    time.sleep(0.05)
print(pathlib.Path({str(state_file)!r}).read_text())
"""
        state = json.loads(subprocess.run([sys.executable, "-c", parent], capture_output=True,
                                          timeout=60, check=True).stdout)
        deadline = time.monotonic() + 60
        while Path(state["dir"]).exists() or state_file.exists():
            self.assertLess(time.monotonic(), deadline, "serve outlived its parent")
            time.sleep(0.05)
        self.assertTrue(refuses(state["imap_port"]))


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""test_mailbox - `mailbridge run` watching real mailboxes: a private Dovecot
(dovecot.py) and the strict ITX emulator, over real IMAP/POP3 and HTTP.
New mail is posted once; the processed-mail action happens only after the
vendor's 2xx; a vendor outage leaves the mail untouched until it returns; a
bad message goes to the quarantine folder without blocking the next one;
a UIDVALIDITY reset doubles nothing; push (IDLE) delivers without a poll."""

import os
import signal
import subprocess
import time
import unittest

import harness
from dovecot import Dovecot
from harness import Emulator, Workdir, make_mail, run_mailbridge

PASSWORDS = {"support": "secret", "sales": "secret2"}


def mailbox_config(wd, itx, dc, routes=None, extra_global="", vendor_timeout="2s", reconcile_after="0s"):
    """Config with an ITX connector and one route per (name, url-scheme, user, extra) tuple."""
    routes = routes or [("support", "imaps", "support", "")]
    text = f"""
state_dir = {wd.path}/state
retry_base = 10ms
retry_max = 50ms
reconcile_after = {reconcile_after}
poll_interval = 200ms
{extra_global}
[connector itx]
type = itx
url = {itx.url}
tokenv2 = env:ITX_TOKENV2
rcntrl = 11
ccntrl = 22
default_customer = 3378825
timeout = {vendor_timeout}
"""
    for name, scheme, user, extra in routes:
        port = {"imaps": dc.imaps_port, "imap": dc.imap_port,
                "pop3s": dc.pop3s_port, "pop3": dc.pop3_port}[scheme]
        folder = "/INBOX" if scheme.startswith("imap") else ""
        text += f"""
[route {name}]
connector = itx
source = {scheme}://127.0.0.1:{port}{folder}
user = {user}
password = env:MB_PW_{user.upper()}
ca_file = {dc.ca_file}
{extra}
"""
    return wd.write_config(text)


ENV = {"ITX_TOKENV2": "test-token", **{f"MB_PW_{u.upper()}": p for u, p in PASSWORDS.items()}}


def mb(conf, *args, **kw):
    return run_mailbridge(["-c", conf, *args], env=ENV, **kw)


def flags(dc, user="support", folder="INBOX"):
    return [f for _, f, _ in dc.messages(user, folder)]


def wait_until(predicate, timeout=30.0):
    """Poll PREDICATE: a hang guard for asynchronous behaviour, not a speed assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class MailboxTest(unittest.TestCase):
    def test_new_mail_posted_once_and_flagged_only_after_the_vendor_has_it(self):
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            conf = mailbox_config(wd, itx, dc)
            dc.append("support", "INBOX", make_mail(subject="Help", message_id="<h1@x>"))
            dc.append("support", "INBOX", make_mail(subject="Re: Help", message_id="<h2@x>",
                                                    in_reply_to="<h1@x>", references="<h1@x>"))
            dc.append("support", "INBOX", make_mail(subject="Read by a person", message_id="<h3@x>"),
                      flags=["\\Seen"])  # \Seen from a human must not make us skip it
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            msgs = itx.messages()
            self.assertEqual([m["subject"] for m in msgs], ["Help", "Re: Help", "Read by a person"])
            self.assertEqual(msgs[1]["caseEactId"], msgs[0]["caseEactId"])  # threaded
            self.assertTrue(all("\\Seen" in f for f in flags(dc)))
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(itx.messages()), 3)  # nothing twice

    def test_vendor_down_leaves_mail_untouched_until_it_returns(self):
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            conf = mailbox_config(wd, itx, dc, routes=[("support", "imaps", "support",
                                                        "processed_action = move:Done")])
            dc.append("support", "INBOX", make_mail(subject="During the outage", message_id="<o@x>"))
            itx.faults([{"status": 503}] * 3)
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 1, r.stderr)  # waiting for a retry
            self.assertEqual(itx.messages(), [])
            self.assertEqual(len(dc.messages("support", "INBOX")), 1)
            self.assertEqual(flags(dc), [set()])  # untouched: not even \Seen
            for _ in range(5):  # the vendor returns after the third 503
                time.sleep(0.1)
                r = mb(conf, "run", "--once")
                if itx.messages():
                    break
            self.assertEqual([m["subject"] for m in itx.messages()], ["During the outage"])
            self.assertEqual(dc.messages("support", "INBOX"), [])
            self.assertEqual(len(dc.messages("support", "Done")), 1)

    def test_a_retry_does_not_need_the_mailbox_copy_any_more(self):
        # Delivered mail is never copied into the store (the mailbox holds it
        # until it is flagged); one the vendor did not take is, so a person
        # deleting it from the mailbox meanwhile loses nothing.
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            conf = mailbox_config(wd, itx, dc)
            uid = dc.append("support", "INBOX", make_mail(subject="Deleted meanwhile", message_id="<dm@x>"))
            itx.faults([{"status": 503, "retry_after": 3600}])  # no retry within this run
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 1, r.stderr)  # waiting for a retry
            self.assertEqual(itx.messages(), [])
            dc.delete("support", "INBOX", uid)
            self.assertEqual(mb(conf, "retry").returncode, 0)  # due now
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([m["subject"] for m in itx.messages()], ["Deleted meanwhile"])

    def test_a_post_killed_in_flight_is_looked_up_not_repeated(self):
        # The daemon dies while the vendor is working on a post: the store has
        # the intent, not the bytes (the mailbox has them). The next run
        # fetches the mail again, asks the vendor, finds it, and only flags it.
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            # the vendor sits on the post for 4 s, well within our timeout: time
            # enough to see it in flight on a loaded machine
            conf = mailbox_config(wd, itx, dc, vendor_timeout="20s")
            dc.append("support", "INBOX", make_mail(subject="In flight", message_id="<if@x>"))
            itx.faults([{"delay_ms": 4000, "path": "/rest/itxems/message"}])
            log = open(wd.path / "daemon.log", "wb")
            proc = subprocess.Popen([os.environ["MAILBRIDGE"], "-c", str(conf), "run"],
                                    env=dict(os.environ, **ENV), stderr=log)
            seen = []

            def posting():
                seen.append(mb(conf, "status").stdout)
                return "posting 1" in seen[-1]

            try:
                in_flight = wait_until(posting, timeout=20)
                self.assertTrue(in_flight, f"last status:\n{seen[-1] if seen else '-'}\ndaemon log:\n"
                                + (wd.path / "daemon.log").read_text(errors="replace"))
                time.sleep(0.3)  # the request is with the vendor, which sits on it
            finally:
                proc.kill()
                proc.wait()
                log.close()
            self.assertTrue(wait_until(lambda: len(itx.messages()) == 1, timeout=10))  # it went on without us
            self.assertEqual(flags(dc), [set()])
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([m["subject"] for m in itx.messages()], ["In flight"])  # not twice
            self.assertIn("action=reconcile", r.stderr)
            self.assertEqual(flags(dc), [{"\\Seen"}])

    def test_bad_message_goes_to_quarantine_folder_and_the_next_still_arrives(self):
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            conf = mailbox_config(wd, itx, dc, extra_global="max_mime_depth = 2")
            deep = (b"From: a@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
                    b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n"
                    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                    b"Content-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n"
                    b"Content-Type: text/plain\r\n\r\nx\r\n--c--\r\n--b--\r\n--a--\r\n")
            dc.append("support", "INBOX", deep)
            dc.append("support", "INBOX", make_mail(subject="Fine", message_id="<fine@x>"))
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([m["subject"] for m in itx.messages()], ["Fine"])
            self.assertEqual(len(dc.messages("support", "Quarantine")), 1)
            self.assertIn("quarantine", r.stderr)
            s = mb(conf, "status")
            self.assertIn("MIME nesting deeper than", s.stdout)

    def test_uidvalidity_reset_doubles_nothing(self):
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            conf = mailbox_config(wd, itx, dc, routes=[("support", "imaps", "support",
                                                        "processed_action = keyword:$Ticketed")])
            for i in range(3):
                dc.append("support", "INBOX", make_mail(subject=f"m{i}", message_id=f"<u{i}@x>"))
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            old = dc.uidvalidity("support", "INBOX")
            dc.reset_uidvalidity("support", "INBOX")
            self.assertNotEqual(dc.uidvalidity("support", "INBOX"), old)
            dc.append("support", "INBOX", make_mail(subject="after reset", message_id="<u9@x>"))
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(sorted(m["subject"] for m in itx.messages()), ["after reset", "m0", "m1", "m2"])
            self.assertTrue(all("$Ticketed" in f for f in flags(dc)))

    def test_wrong_password_is_reported_clearly_and_other_routes_go_on(self):
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            conf = mailbox_config(wd, itx, dc, routes=[("support", "imaps", "support", ""),
                                                       ("sales", "imap", "sales", "")])
            dc.append("sales", "INBOX", make_mail(subject="For sales", message_id="<s@x>"))
            env = dict(ENV, MB_PW_SUPPORT="not-the-password")
            r = run_mailbridge(["-c", conf, "check"], env=env)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("route support: mailbox", r.stdout)
            self.assertIn("refused (credentials or TLS)", r.stdout)
            self.assertRegex(r.stdout, r"route sales: mailbox .*: OK")
            self.assertRegex(r.stdout, r"route sales: connector itx: OK")
            self.assertNotIn("not-the-password", r.stdout + r.stderr)
            r = run_mailbridge(["-c", conf, "run", "--once"], env=env)
            self.assertEqual(r.returncode, 69, r.stderr)
            self.assertIn("route=support", r.stderr)
            self.assertEqual([m["subject"] for m in itx.messages()], ["For sales"])  # not stalled

    def test_untrusted_certificate_is_refused_before_login(self):
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            conf = mailbox_config(wd, itx, dc)
            bad = wd.write_config(conf.read_text().replace(str(dc.ca_file), str(dc.bad_ca_file)), "bad.conf")
            r = mb(bad, "check")
            self.assertEqual(r.returncode, 1)
            self.assertIn("certificate", r.stdout)

    def test_pop3_deletes_only_after_the_vendor_has_it(self):
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            conf = mailbox_config(wd, itx, dc, routes=[("support", "pop3s", "support",
                                                        "processed_action = delete")])
            dc.append("support", "INBOX", make_mail(subject="By POP3", message_id="<p@x>"))
            # Retry-After keeps the retry out of this run whatever the machine's speed
            itx.faults([{"status": 503, "retry_after": 3600}])
            r = mb(conf, "run", "--once")
            self.assertEqual(len(dc.messages("support", "INBOX")), 1)  # vendor said 503: kept
            self.assertEqual(mb(conf, "retry").returncode, 0)  # due now
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            r = mb(conf, "run", "--once")  # the deletion is committed at the end of a session
            self.assertEqual([m["subject"] for m in itx.messages()], ["By POP3"])
            self.assertEqual(dc.messages("support", "INBOX"), [])

    def test_large_message_is_delivered_whole(self):
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            conf = mailbox_config(wd, itx, dc)
            blob = os.urandom(9 << 20)  # base64: ~12 MB, over the 8 MiB spool threshold: fetched in chunks
            dc.append("support", "INBOX", make_mail(subject="Big", message_id="<big@x>",
                                                    attachments=[("big.bin", "application/octet-stream", blob, None)]))
            dc.append("support", "INBOX", make_mail(subject="Small after big", message_id="<small@x>"))
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            msgs = itx.messages()
            self.assertEqual([m["subject"] for m in msgs], ["Big", "Small after big"])
            self.assertEqual([(f["filename"], f["size"]) for f in msgs[0]["files"]], [("big.bin", len(blob))])

    def test_xoauth2_token_from_a_command(self):
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            token = dc.oauth_token("support")
            (wd.path / "token.sh").write_text(f"#!/bin/sh\necho {token}\n")
            (wd.path / "token.sh").chmod(0o700)
            conf = mailbox_config(wd, itx, dc)
            text = conf.read_text().replace("password = env:MB_PW_SUPPORT",
                                            f"auth = xoauth2\noauth_token_command = {wd.path}/token.sh")
            conf.write_text(text)
            dc.append("support", "INBOX", make_mail(subject="Via OAuth", message_id="<oa@x>"))
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([m["subject"] for m in itx.messages()], ["Via OAuth"])
            self.assertNotIn(token, r.stderr)

    def test_daemon_survives_a_server_restart(self):
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            conf = mailbox_config(wd, itx, dc)
            log_path = wd.path / "daemon.log"
            with open(log_path, "w") as log:
                proc = subprocess.Popen([os.environ["MAILBRIDGE"], "-c", str(conf), "run"],
                                        env=dict(os.environ, **ENV), stderr=log)
            try:
                self.assertTrue(wait_until(lambda: "status=connected" in log_path.read_text()))
                dc.stop()  # the server goes away under the daemon's feet
                self.assertTrue(wait_until(lambda: "resume_in=" in log_path.read_text()), log_path.read_text())
                dc.start()
                dc.append("support", "INBOX", make_mail(subject="After the restart", message_id="<ar@x>"))
                self.assertTrue(wait_until(lambda: len(itx.messages()) == 1, timeout=30), log_path.read_text())
                self.assertIsNone(proc.poll())  # still running
            finally:
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(timeout=20)
            self.assertEqual(rc, 0)

    def test_idle_delivers_new_mail_without_waiting_for_a_poll(self):
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            conf = mailbox_config(wd, itx, dc, extra_global="")
            text = conf.read_text().replace("poll_interval = 200ms", "poll_interval = 1h")
            conf.write_text(text)
            log = open(wd.path / "daemon.log", "w+")
            proc = subprocess.Popen([os.environ["MAILBRIDGE"], "-c", str(conf), "run"],
                                    env=dict(os.environ, **ENV), stderr=log)
            try:
                self.assertTrue(wait_until(lambda: "status=connected" in (wd.path / "daemon.log").read_text()))
                time.sleep(0.3)  # let it enter IDLE; with a 1 h poll only a push can wake it
                dc.append("support", "INBOX", make_mail(subject="Pushed", message_id="<push@x>"))
                self.assertTrue(wait_until(lambda: len(itx.messages()) == 1, timeout=20),
                                (wd.path / "daemon.log").read_text())
                self.assertTrue(wait_until(lambda: flags(dc) == [{"\\Seen"}], timeout=20))
            finally:
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(timeout=20)
                log.close()
            self.assertEqual(rc, 0)
            self.assertIn("run: stopped", (wd.path / "daemon.log").read_text())

    def test_replies_in_the_same_batch_as_their_parent_join_its_ticket(self):
        # Posts of one batch go out several at a time; a reply must still wait
        # for its parent's ticket (the parent's wave is posted first), so the
        # thread is one ticket, posted in order, and nothing is deferred.
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            conf = mailbox_config(wd, itx, dc)
            mails = [("Order 7", "<t1@x>", None, None),
                     ("Unrelated 1", "<u1@x>", None, None),
                     ("Re: Order 7", "<t2@x>", "<t1@x>", "<t1@x>"),
                     ("Unrelated 2", "<u2@x>", None, None),
                     ("Re: Re: Order 7", "<t3@x>", "<t2@x>", "<t1@x> <t2@x>")]
            for subject, mid, irt, refs in mails:
                dc.append("support", "INBOX", make_mail(subject=subject, message_id=mid,
                                                        in_reply_to=irt, references=refs))
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("status=deferred", r.stderr)
            msgs = {m["subject"]: m for m in itx.messages()}
            self.assertEqual(len(itx.messages()), 5)
            first, second, third = (msgs[s] for s in ("Order 7", "Re: Order 7", "Re: Re: Order 7"))
            self.assertTrue(first["createCase"])
            self.assertEqual({second["caseEactId"], third["caseEactId"]}, {first["caseEactId"]})
            self.assertEqual(second["replyToEactId"], first["eactId"])  # posted in order
            self.assertEqual(third["replyToEactId"], second["eactId"])
            self.assertNotIn(msgs["Unrelated 1"]["caseEactId"], (first["caseEactId"],
                                                                  msgs["Unrelated 2"]["caseEactId"]))
            self.assertTrue(all("\\Seen" in f for f in flags(dc)))


if __name__ == "__main__":
    harness.main()

"""test_import - `mailbridge import` end to end: real binary, real HTTP, the
strict ITX emulator. New cases with inline images and files, threading,
duplicates, retries, quarantine, reconciliation of lost answers."""

import json
import sqlite3
import time
import unittest

import harness
from harness import Emulator, Workdir, make_mail, run_mailbridge

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e2a1"
                    "a3b50000000049454e44ae426082")
PDF = b"%PDF-1.4\n%fake but fine\n%%EOF\n"


def config(wd, itx, extra_global="", extra_connector="", token="env:ITX_TOKENV2", reconcile_after="0s",
           retry=("10ms", "50ms")):
    return wd.write_config(f"""
state_dir = {wd.path}/state
retry_base = {retry[0]}
retry_max = {retry[1]}
reconcile_after = {reconcile_after}
{extra_global}
[connector itx]
type = itx
url = {itx.url}
tokenv2 = {token}
rcntrl = 11
ccntrl = 22
customer = kari@example.com 1001
customer = @example.org 1002
default_customer = 3378825
timeout = 2s
{extra_connector}
[route support]
connector = itx
""")


ENV = {"ITX_TOKENV2": "test-token"}


def mb(conf, *args, **kw):
    return run_mailbridge(["-c", conf, *args], env=ENV, **kw)


def states(wd):
    db = sqlite3.connect(wd.path / "state" / "mailbridge.db")
    try:
        return dict(db.execute("SELECT key, state FROM messages").fetchall())
    finally:
        db.close()


class ImportTest(unittest.TestCase):
    def test_new_case_with_inline_image_and_pdf_then_reply_threads(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx)
            box = wd.maildir("Support")
            box.add(make_mail(subject="Printer on fire", from_="Kari <kari@example.com>",
                              message_id="<first@example.com>", text="It burns.",
                              html='<p>It burns.</p><img src="cid:shot@x">',
                              attachments=[("shot.png", "image/png", PNG, "shot@x"),
                                           ("manual.pdf", "application/pdf", PDF, None)]))
            box.add(make_mail(subject="Re: Printer on fire", from_="Kari <kari@example.com>",
                              message_id="<second@example.com>", in_reply_to="<first@example.com>",
                              references="<first@example.com>", text="Still burning."))
            r = mb(conf, "import", "--route", "support", box.path)
            self.assertEqual(r.returncode, 0, r.stderr)
            msgs = itx.messages()
            self.assertEqual(len(msgs), 2)
            first, second = msgs
            self.assertTrue(first["createCase"])
            self.assertEqual(first["eeexId"], 1001)
            self.assertEqual(first["direction"], 2)
            self.assertEqual([(f["filename"], f["contentType"], f["size"]) for f in first["files"]],
                             [("shot.png", "image/png", len(PNG)), ("manual.pdf", "application/pdf", len(PDF))])
            # the inline image is referenced through the stored file, the PDF is not referenced
            self.assertIn(f"rest/core/corefile/i/{first['files'][0]['id']}", first["body"])
            self.assertNotIn("cid:shot@x", first["body"])
            self.assertFalse(second["createCase"])
            self.assertEqual(second["caseEactId"], first["caseEactId"])
            self.assertEqual(second["replyToEactId"], first["eactId"])
            self.assertIn("action=append", r.stderr)
            self.assertIn("status=ok", r.stderr)

    def test_reimport_and_duplicate_files_post_once(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx)
            box = wd.maildir("Support")
            raw = make_mail(subject="Once only", message_id="<once@example.com>")
            box.add(raw)
            box.add(raw)  # the same message delivered twice
            box.add(make_mail(subject="No id", message_id="<tmp@x>").replace(b"Message-ID: <tmp@x>\n", b""))
            r1 = mb(conf, "import", "--route", "support", box.path)
            r2 = mb(conf, "import", "--route", "support", box.path)
            self.assertEqual((r1.returncode, r2.returncode), (0, 0), r1.stderr + r2.stderr)
            self.assertEqual(len(itx.messages()), 2)
            self.assertIn("1 duplicates skipped", r1.stderr)
            self.assertIn("0 new tickets", r2.stderr)
            self.assertIn("3 duplicates skipped", r2.stderr)

    def test_subject_token_and_customer_mapping(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx)
            box = wd.maildir("Support")
            box.add(make_mail(subject="Invoice question", from_="bjorn@example.org", message_id="<a@x>"))
            box.add(make_mail(subject="Stranger", from_="who@elsewhere.test", message_id="<b@x>"))
            r = mb(conf, "import", "--route", "support", box.path)
            self.assertEqual(r.returncode, 0, r.stderr)
            case = itx.messages()[0]["caseEactId"]
            box2 = wd.maildir("Later")
            box2.add(make_mail(subject=f"Re: [#{case}] Invoice", from_="bjorn@example.org", message_id="<c@x>"))
            r = mb(conf, "import", "--route", "support", box2.path)
            self.assertEqual(r.returncode, 0, r.stderr)
            a, b, c = itx.messages()
            self.assertEqual((a["eeexId"], b["eeexId"], c["eeexId"]), (1002, 3378825, 1002))
            self.assertEqual(c["caseEactId"], case)
            self.assertFalse(c["createCase"])

    def test_5xx_is_retried_with_backoff_then_delivered(self):
        with Emulator() as itx, Workdir() as wd:
            # backoff long enough that no retry falls inside a run, however slow the machine
            conf = config(wd, itx, retry=("300ms", "300ms"))
            box = wd.maildir("Support")
            box.add(make_mail(subject="Flaky", message_id="<flaky@x>"))
            itx.faults([{"status": 503, "body": "maintenance"}, {"status": 503}])
            r = mb(conf, "import", "--route", "support", box.path)
            self.assertEqual(r.returncode, 1, r.stderr)  # needs attention: waiting for a retry
            self.assertIn("status=retry", r.stderr)
            self.assertEqual(states(wd), {"flaky@x": "retry"})
            time.sleep(0.35)
            r = mb(conf, "run", "--once")  # second 503: backs off again
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("attempt=2", r.stderr)
            time.sleep(0.35)
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(itx.messages()), 1)
            self.assertEqual(states(wd), {"flaky@x": "done"})
            self.assertEqual([q["status"] for q in itx.requests()], [503, 503, 200])

    def test_a_slow_vendor_is_not_sent_a_post_twice(self):
        # The vendor answers after our timeout (2 s) but creates the message all
        # the same. Asked at once, it would not have it yet and get a second
        # post; mailbridge asks only reconcile_after after the post was sent.
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx, reconcile_after="3s")
            box = wd.maildir("Support")
            box.add(make_mail(subject="Slow", message_id="<slow@x>"))
            itx.faults([{"delay_ms": 2500, "path": "/rest/itxems/message"}])
            r = mb(conf, "import", "--route", "support", box.path)
            self.assertEqual(r.returncode, 1, r.stderr)  # needs attention: an answer is missing
            self.assertIn("status=unanswered", r.stderr)
            self.assertIn("retry_in=3s", r.stderr)
            r = mb(conf, "run", "--once")  # too early to ask: nothing is sent
            self.assertNotIn("action=reconcile", r.stderr)
            self.assertEqual(states(wd), {"slow@x": "posting"})
            for _ in range(200):  # a hang guard: the vendor finishes on its own
                if itx.messages():
                    break
                time.sleep(0.05)
            self.assertEqual(len(itx.messages()), 1)
            time.sleep(1.0)  # past reconcile_after (3 s after the post)
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("action=reconcile", r.stderr)
            self.assertEqual([m["subject"] for m in itx.messages()], ["Slow"])  # once
            self.assertEqual(states(wd), {"slow@x": "done"})
            posts = [q for q in itx.requests() if q["path"] == "/rest/itxems/message"]
            self.assertEqual(len(posts), 1)

    def test_400_is_quarantined_with_the_vendor_answer_and_can_be_retried(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx)
            box = wd.maildir("Support")
            box.add(make_mail(subject="Rejected", message_id="<rej@x>"))
            box.add(make_mail(subject="Fine", message_id="<fine@x>"))
            itx.faults([{"status": 400, "body": '{"error": "subject too spicy"}'}])
            r = mb(conf, "import", "--route", "support", box.path)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertEqual(states(wd), {"rej@x": "quarantine", "fine@x": "done"})
            s = mb(conf, "status")
            self.assertIn("subject too spicy", s.stdout)
            self.assertIn("quarantine 1", s.stdout)
            r = mb(conf, "retry", "--route", "support")
            self.assertIn("1 message(s) queued again", r.stdout)
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(states(wd), {"rej@x": "done", "fine@x": "done"})
            self.assertEqual(sorted(m["subject"] for m in itx.messages()), ["Fine", "Rejected"])

    def test_wrong_token_stops_the_route_and_loses_nothing(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx)
            box = wd.maildir("Support")
            box.add(make_mail(subject="One", message_id="<one@x>"))
            box.add(make_mail(subject="Two", message_id="<two@x>"))
            r = run_mailbridge(["-c", conf, "import", "--route", "support", box.path],
                               env={"ITX_TOKENV2": "wrong"})
            self.assertEqual(r.returncode, 69, r.stderr)
            self.assertIn("401", r.stderr)
            self.assertNotIn("wrong", r.stderr.replace("went wrong", ""))  # the secret is never logged
            self.assertEqual(len(itx.messages()), 0)
            self.assertEqual(states(wd), {"one@x": "queued"})
            r = mb(conf, "import", "--route", "support", box.path)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(sorted(m["subject"] for m in itx.messages()), ["One", "Two"])

    def test_lost_answer_is_reconciled_not_posted_twice(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx)
            box = wd.maildir("Support")
            box.add(make_mail(subject="Lost answer", from_="kari@example.com", message_id="<lost@x>"))
            itx.faults([{"drop_response": True}])  # stored by the vendor, the answer never comes
            r = mb(conf, "import", "--route", "support", box.path)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("status=unanswered", r.stderr)
            self.assertIn("action=reconcile", r.stderr)
            self.assertEqual(len(itx.messages()), 1)
            self.assertEqual(states(wd), {"lost@x": "done"})

    def test_unsettled_post_is_reconciled_by_the_next_run(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx)
            box = wd.maildir("Support")
            box.add(make_mail(subject="Unsettled", from_="kari@example.com", message_id="<uns@x>"))
            # the answer is lost and the vendor cannot be asked right away: as after a crash,
            # the message stays in POSTING, owned by a process that is gone
            itx.faults([{"drop_response": True},
                        {"status": 503, "path": "/rest/itxems/message/search"}])
            r = mb(conf, "import", "--route", "support", box.path)
            self.assertEqual(r.returncode, 0, r.stderr)  # safe in our store
            self.assertIn("status=unsettled", r.stderr)
            self.assertEqual(states(wd), {"uns@x": "posting"})
            s = mb(conf, "status")
            self.assertIn("posting 1", s.stdout)
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("action=reconcile", r.stderr)
            self.assertEqual(len(itx.messages()), 1)
            self.assertEqual(states(wd), {"uns@x": "done"})

    def test_mbox_archive_and_unparsable_message(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx, extra_global="max_mime_depth = 3")
            nested = (b"From: a@example.com\nSubject: deep\nMessage-ID: <deep@x>\nMIME-Version: 1.0\n"
                      b"Content-Type: multipart/mixed; boundary=b1\n\n--b1\n"
                      b"Content-Type: multipart/mixed; boundary=b2\n\n--b2\n"
                      b"Content-Type: multipart/mixed; boundary=b3\n\n--b3\n"
                      b"Content-Type: multipart/mixed; boundary=b4\n\n--b4\n"
                      b"Content-Type: text/plain\n\ndeep\n--b4--\n--b3--\n--b2--\n--b1--\n")
            mbox = wd.mbox("archive.mbox", [make_mail(subject="From the archive", message_id="<m1@x>",
                                                      text="From here on\nFrom the start\n"),
                                            nested])
            r = mb(conf, "import", "--route", "support", mbox)
            self.assertEqual(r.returncode, 1, r.stderr)
            # the unparsable one is kept under the hash of its bytes, with the reason
            st = states(wd)
            self.assertEqual(st.pop("m1@x"), "done")
            self.assertEqual(list(st.values()), ["quarantine"])
            self.assertTrue(next(iter(st)).startswith("sha256:"))
            self.assertIn("quarantine", r.stderr)
            msgs = itx.messages()
            self.assertEqual(len(msgs), 1)
            self.assertIn("From here on", msgs[0]["body"])


if __name__ == "__main__":
    harness.main()

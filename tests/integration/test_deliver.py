"""test_deliver - `mailbridge deliver` as an MTA pipe: the exit code is the
MTA's instruction, so each one is proved: 0 only once the message is posted
or durably queued, 75 when it could not be stored, 78 for a bad config, 65
(bounce) only for a message over the size limit; malformed mail is kept."""

import sqlite3
import unittest

import harness
from harness import Emulator, Workdir, make_mail, run_mailbridge
from test_import import ENV, config


def mb(conf, *args, **kw):
    return run_mailbridge(["-c", conf, *args], env=ENV, **kw)


class DeliverTest(unittest.TestCase):
    def test_posted_exit_0(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx)
            r = mb(conf, "deliver", "--route", "support", input=make_mail(subject="Piped", message_id="<p@x>"))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([m["subject"] for m in itx.messages()], ["Piped"])

    def test_vendor_unreachable_is_queued_exit_0_then_run_posts_it(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx)
            down = wd.write_config(conf.read_text().replace(itx.url, "http://127.0.0.1:1"), "down.conf")
            r = mb(down, "deliver", "--route", "support", input=make_mail(subject="Queued", message_id="<q@x>"))
            self.assertEqual(r.returncode, 0, r.stderr)  # safe in our queue
            self.assertIn("status=retry", r.stderr)
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([m["subject"] for m in itx.messages()], ["Queued"])

    def test_connection_reset_is_checked_with_the_vendor_before_posting_again(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx)
            itx.faults([{"reset": True}])
            r = mb(conf, "deliver", "--route", "support", input=make_mail(subject="Reset", message_id="<r@x>"))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("status=unanswered", r.stderr)
            self.assertIn("the vendor does not have it", r.stderr)  # asked before any second post
            self.assertEqual(itx.messages(), [])
            r = mb(conf, "run", "--once")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([m["subject"] for m in itx.messages()], ["Reset"])

    def test_store_unwritable_exit_75(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx)
            (wd.path / "state").write_text("a file where the state directory should be")
            r = mb(conf, "deliver", "--route", "support", input=make_mail(message_id="<s@x>"))
            self.assertEqual(r.returncode, 75, r.stderr)
            self.assertEqual(itx.messages(), [])

    def test_bad_config_exit_78_names_file_and_line(self):
        with Workdir() as wd:
            conf = wd.write_config("state_dir = /tmp\n[route support]\nconnector = nowhere\ncolour = red\n")
            r = mb(conf, "deliver", "--route", "support", input=make_mail())
            self.assertEqual(r.returncode, 78, r.stderr)
            self.assertIn(f"{conf}:4: unknown key 'colour'", r.stderr)

    def test_malformed_message_is_quarantined_not_bounced(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx, extra_global="max_mime_depth = 2")
            raw = (b"From: a@example.com\nSubject: nested\nMIME-Version: 1.0\n"
                   b"Content-Type: multipart/mixed; boundary=a\n\n--a\n"
                   b"Content-Type: multipart/mixed; boundary=b\n\n--b\n"
                   b"Content-Type: multipart/mixed; boundary=c\n\n--c\n"
                   b"Content-Type: text/plain\n\nx\n--c--\n--b--\n--a--\n")
            r = mb(conf, "deliver", "--route", "support", input=raw)
            self.assertEqual(r.returncode, 0, r.stderr)
            db = sqlite3.connect(wd.path / "state" / "mailbridge.db")
            rows = db.execute("SELECT m.state, r.id IS NOT NULL FROM messages m LEFT JOIN raws r ON r.id = m.id").fetchall()
            db.close()
            self.assertEqual(rows, [("quarantine", 1)])  # kept, with its bytes, for a person
            self.assertEqual(itx.messages(), [])

    def test_oversize_exit_65_with_reason(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx, extra_global="max_message_size = 2k")
            r = mb(conf, "deliver", "--route", "support", input=make_mail(text="x" * 5000))
            self.assertEqual(r.returncode, 65, r.stderr)
            self.assertIn("larger than", r.stderr)

    def test_same_message_delivered_twice_posts_once(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx)
            raw = make_mail(subject="Twice", message_id="<twice@x>")
            for _ in range(2):
                r = mb(conf, "deliver", "--route", "support", input=raw)
                self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(itx.messages()), 1)


if __name__ == "__main__":
    harness.main()

"""test_crash - nothing lost, nothing doubled, whatever the moment of death.

The daemon ingests a few hundred messages from a real Dovecot while the
emulator answers some posts with 5xx and drops the answer to others (the
message is stored, the client never hears). The daemon is killed with
SIGKILL at random moments and restarted, again and again. At the end every
message is at the vendor exactly once and flagged on the server."""

import os
import random
import signal
import subprocess
import time
import unittest

import harness
from dovecot import Dovecot
from harness import Emulator, Workdir, make_mail
from test_mailbox import ENV, mailbox_config, mb, wait_until

MESSAGES = int(os.environ.get("MB_CRASH_MESSAGES", "300"))
KILLS = int(os.environ.get("MB_CRASH_KILLS", "12"))


class CrashTest(unittest.TestCase):
    def test_sigkill_at_random_moments_loses_and_doubles_nothing(self):
        rnd = random.Random(int(os.environ.get("MB_CRASH_SEED", "4711")))
        with Emulator() as itx, Dovecot() as dc, Workdir() as wd:
            conf = mailbox_config(wd, itx, dc, routes=[("support", "imaps", "support", "batch_size = 25")])
            subjects = [f"crash test {i:04d}" for i in range(MESSAGES)]
            for i, subject in enumerate(subjects):
                # every tenth a reply, so threading state must survive the kills too
                reply = {"in_reply_to": f"<c{i - 1:04d}@x>"} if i % 10 == 9 else {}
                dc.append("support", "INBOX", make_mail(subject=subject, message_id=f"<c{i:04d}@x>", **reply))
            faults = []
            for _ in range(MESSAGES // 3):
                faults.append(rnd.choice([{"status": 503}, {"status": 500, "body": "oops"},
                                          {"drop_response": True, "path": "/rest/itxems/message"}]))
            itx.faults(faults)

            log = open(wd.path / "daemon.log", "ab")
            for _ in range(KILLS):
                proc = subprocess.Popen([os.environ["MAILBRIDGE"], "-c", str(conf), "run"],
                                        env=dict(os.environ, **ENV), stderr=log)
                time.sleep(rnd.uniform(0.05, 0.8))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            log.close()
            # Then let it finish in peace (a hang guard, not a speed assertion).
            for _ in range(200):
                r = mb(conf, "run", "--once")
                posted = {m["subject"] for m in itx.messages()}
                if posted == set(subjects) and all("\\Seen" in f for _, f, _ in dc.messages("support", "INBOX")):
                    break
                time.sleep(0.05)
            subjects_at_vendor = [m["subject"] for m in itx.messages()]
            missing = set(subjects) - set(subjects_at_vendor)
            doubled = sorted(s for s in set(subjects_at_vendor) if subjects_at_vendor.count(s) > 1)
            self.assertEqual(missing, set(), f"lost: {sorted(missing)[:10]}")
            self.assertEqual(doubled, [], f"posted twice: {doubled[:10]}")
            self.assertEqual(len(subjects_at_vendor), MESSAGES)
            unflagged = [uid for uid, f, _ in dc.messages("support", "INBOX") if "\\Seen" not in f]
            self.assertEqual(unflagged, [])
            s = mb(conf, "status")
            self.assertIn(f"done {MESSAGES}", s.stdout)


if __name__ == "__main__":
    harness.main()

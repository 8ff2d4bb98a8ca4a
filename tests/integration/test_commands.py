"""test_commands - the smaller commands a user meets first: parse (JSON and
the connector dry run), config (check and the sample), --help everywhere."""

import json
import os
import unittest
from pathlib import Path

import harness
from harness import Emulator, Workdir, make_mail, run_mailbridge
from test_import import ENV, PNG, config

SAMPLE = Path(os.environ.get("MB_SOURCE_DIR", ".")) / "fixtures" / "sample" / "Maildir"


class CommandsTest(unittest.TestCase):
    def test_parse_prints_one_json_object_per_message(self):
        r = run_mailbridge(["parse", SAMPLE])
        lines = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual(len(lines), 7)
        first = lines[0]
        self.assertEqual(first["message_id"], "sample-01@mail.example.com")
        self.assertEqual(first["from"], {"name": "Kari Nordmann", "address": "kari@example.com"})
        self.assertEqual(first["date"], "2026-03-02T09:15:00Z")
        self.assertEqual([(a["filename"], a["inline"], a["content_id"]) for a in first["attachments"]],
                         [("screenshot.png", True, "logo@example.com"), ("manual.pdf", False, None)])
        self.assertTrue(first["source"].endswith("new/1772600001.M1P1.sample"))
        self.assertEqual(lines[1]["in_reply_to"], "sample-01@mail.example.com")
        self.assertEqual(lines[2]["subject"], "Spørsmål om faktura")
        self.assertEqual(lines[2]["from"]["name"], "Bjørn Åse")
        self.assertIn("Bjørn", lines[2]["html"])  # text-only mail gets an HTML rendering
        self.assertIn("Outage", lines[3]["text"])  # HTML-only mail gets a text rendering
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_parse_connector_dry_run_sends_nothing_and_hides_the_token(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx)
            eml = wd.path / "m.eml"
            eml.write_bytes(make_mail(subject="Dry", html='<img src="cid:i@x">',
                                      attachments=[("i.png", "image/png", PNG, "i@x")]))
            r = run_mailbridge(["-c", conf, "parse", "--connector", "itx", eml], env=ENV)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("POST " + itx.url + "/rest/itxems/message", r.stdout)
            self.assertIn("tokenv2: <redacted>", r.stdout)
            self.assertNotIn("test-token", r.stdout)
            self.assertIn('"createCase":true', r.stdout.replace(" ", ""))
            self.assertIn("files[0]", r.stdout)
            self.assertIn('filename="i.png"', r.stdout)
            self.assertEqual(itx.requests(), [])

    def test_parse_connector_without_any_config_uses_example_values(self):
        eml = SAMPLE / "new" / "1772600001.M1P1.sample"
        r = run_mailbridge(["parse", "--connector", "itx", eml], env={"MAILBRIDGE_CONFIG": "/nonexistent/mb.conf"})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("# no configuration", r.stdout)
        self.assertIn("POST https://itx.example/rest/itxems/message", r.stdout)
        self.assertIn('src=\\"files[0]\\"', r.stdout)  # the inline image, as a files part
        self.assertIn('filename="manual.pdf"', r.stdout)
        r = run_mailbridge(["parse", "--connector", "nosuchvendor", eml],
                           env={"MAILBRIDGE_CONFIG": "/nonexistent/mb.conf"})
        self.assertEqual(r.returncode, 78)
        self.assertIn("'nosuchvendor' is not a connector type", r.stderr)

    def test_config_sample_is_the_checked_in_example(self):
        r = run_mailbridge(["config", "--sample"])
        self.assertEqual(r.returncode, 0, r.stderr)
        example = Path(os.environ.get("MB_SOURCE_DIR", ".")) / "conf" / "mailbridge.conf.example"
        self.assertEqual(r.stdout, example.read_text(),
                         "conf/mailbridge.conf.example is stale: regenerate it with "
                         "`mailbridge config --sample > conf/mailbridge.conf.example`")

    def test_config_check_reports_file_line_and_key(self):
        with Emulator() as itx, Workdir() as wd:
            conf = config(wd, itx)
            r = run_mailbridge(["-c", conf, "config"], env=ENV)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("OK (1 route(s), 1 connector(s)", r.stdout)
            bad = wd.write_config(conf.read_text().replace("rcntrl = 11", "rcntrl = eleven"), "bad.conf")
            r = run_mailbridge(["-c", bad, "config"], env=ENV)
            self.assertEqual(r.returncode, 78)
            line = next(i for i, l in enumerate(bad.read_text().splitlines(), 1) if l.startswith("rcntrl"))
            self.assertIn(f"{bad}:{line}: key 'rcntrl'", r.stderr)
            r = run_mailbridge(["-c", conf, "config"])  # the secret's variable is not set
            self.assertEqual(r.returncode, 78)
            self.assertIn("environment variable ITX_TOKENV2 is not set", r.stderr)

    def test_every_command_has_help(self):
        for cmd in ["parse", "import", "deliver", "run", "status", "retry", "config", "check"]:
            r = run_mailbridge([cmd, "--help"])
            self.assertEqual(r.returncode, 0, cmd)
            self.assertIn("usage: mailbridge", r.stdout, cmd)
        r = run_mailbridge(["--help"])
        self.assertIn("commands:", r.stdout)
        r = run_mailbridge(["frobnicate"])
        self.assertEqual(r.returncode, 64)


if __name__ == "__main__":
    harness.main()

"""bench_mailbox - Dovecot -> mailbridge -> vendor, end to end (issue 3).

Fills the INBOX of a private Dovecot (tests/integration/dovecot.py) with N
generated support mails, then measures, in the same run:

  1. the floor: bench_imap_fetch, a bare libetpan UID FETCH of the mailbox;
  2. `mailbridge run --once` posting every message to http_sink (a minimal C
     HTTP/1.1 vendor stand-in) and flagging it \\Seen: messages per second and
     mailbridge's CPU time per message; the sides take turns, best of R each;
  3. the delay from an APPEND to the vendor's receipt with `mailbridge run`
     in IDLE: median and worst over K appends, one at a time; beside it the
     floor, the delay until a bare IDLE client hears of an APPEND.

Figures are printed with PASS/BELOW against the targets, never asserted; the
run fails only when mail is lost (a benchmark that lost mail is not a
result). Needs a non-sanitized build (default build-bench). Python 3.11
standard library only; see README.md for the options and what is measured.
"""

import argparse
import contextlib
import email.policy
import email.utils
import imaplib
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(SOURCE_DIR / "tests" / "integration"))
from dovecot import Dovecot, DovecotUnavailable  # noqa: E402

USER = "support"
PASSWORD = "secret"
TARGET_RATE = 2000        # messages per second end to end, at least
TARGET_CPU_US = 300       # microseconds of mailbridge CPU per message, under
TARGET_LATENCY_S = 1.0    # APPEND to the vendor's receipt under IDLE, under
HANG_GUARD_S = 60         # longest wait for anything asynchronous (never a verdict)
FLOOR_FOLDER = "IdleFloor"  # where the bare IDLE client's appends go
# Pause before the next APPEND once the last one arrived, drawn at random:
# mail comes at any moment, also while the daemon is still busy with the
# last one (at a fixed pause an APPEND would always find the same state).
APPEND_GAP_S = (0.0, 1.0)

# The kinds of mail in the mailbox and their share in percent.
KINDS = (
    ("short replies", 45),
    ("text+html", 30),
    ("html with an inline image", 12),
    ("text with a photo attached", 13),
)

WORDS = ("order invoice delivery please account password refund the we your ticket thanks "
         "again support could you check status since Monday still not working printer error "
         "message attached screenshot team update urgent customer number shipment received "
         "damaged replace warranty contract renewal meeting tomorrow regards issue server "
         "login portal access Größe für Grüße café naïve").split()
FIRST = ("Anna", "Jürgen", "Olga", "José", "Mette", "Søren", "Chloé", "Peter", "Mary", "Priya")
LAST = ("Müller", "Smith", "Kowalski", "García", "Nielsen", "Dubois", "Jones", "Rossi", "Novák")
DOMAINS = ("example.com", "mail.example.org", "kunde.example.de", "shop.example.net")


# -- the mailbox ---------------------------------------------------------------

# _prose - PARAGRAPHS paragraphs of WORDS, wrapped near 70 characters
def _prose(rng, paragraphs, low=20, high=90):
    out = []
    for _ in range(paragraphs):
        lines, line, width = [], [], 0
        for _ in range(rng.randint(low, high)):
            word = rng.choice(WORDS)
            line.append(word)
            width += len(word) + 1
            if width > 68:
                lines.append(" ".join(line))
                line, width = [], 0
        if line:
            lines.append(" ".join(line))
        out.append("\n".join(lines).capitalize() + ".")
    return "\n\n".join(out) + "\n"


# _html - TEXT as a table-layout HTML mail body; IMG_CID adds an inline image
def _html(rng, text, img_cid=None):
    rows = "".join(f'<tr><td style="padding:8px;font-family:Arial,sans-serif;font-size:14px">'
                   f"{p}</td></tr>\n" for p in text.split("\n\n"))
    img = f'<tr><td><img src="cid:{img_cid[1:-1]}" alt="screenshot" width="640"></td></tr>\n' \
        if img_cid else ""
    footer = "".join(f"<p style=\"color:#888\">{rng.choice(WORDS)} {rng.choice(WORDS)}</p>"
                     for _ in range(rng.randint(2, 8)))
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>td{{color:#333}}</style>"
            f"</head><body><table width=\"100%\" cellpadding=\"0\" cellspacing=\"0\">\n{rows}{img}"
            f"</table>{footer}</body></html>\n")


# _image - (maintype, subtype, bytes) of a 20-60 KB image: a real magic
# number, then incompressible bytes like real compressed image data
def _image(rng):
    size = rng.randint(20, 60) * 1024
    if rng.random() < 0.5:
        return "image", "png", b"\x89PNG\r\n\x1a\n" + rng.randbytes(size - 8)
    return "image", "jpeg", b"\xff\xd8\xff\xe0" + rng.randbytes(size - 4)


# _message - message I of kind KIND (an index into KINDS), replying to one
# of the Message-IDs EARLIER if it is a reply: (Maildir bytes (LF), Message-ID)
def _message(rng, seed, i, kind, earlier):
    msg = EmailMessage()
    domain = rng.choice(DOMAINS)
    msg["From"] = f"{rng.choice(FIRST)} {rng.choice(LAST)} <user{rng.randint(1, 999)}@{domain}>"
    msg["To"] = "Support <support@example.com>"
    when = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc) + timedelta(minutes=7 * i)
    msg["Date"] = email.utils.format_datetime(when)
    msg["Message-ID"] = f"<bench.{seed}.{i}@{domain}>"
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))).capitalize()
    if kind == 0 and earlier:  # a reply to an earlier mail of the mailbox
        parent = rng.choice(earlier)
        msg["Subject"] = f"Re: {subject}"
        msg["In-Reply-To"] = parent
        msg["References"] = parent
        quoted = "\n".join("> " + line for line in _prose(rng, rng.randint(1, 3)).splitlines())
        msg.set_content(_prose(rng, rng.randint(1, 2), 10, 40) + "\nOn Monday you wrote:\n" + quoted)
    elif kind == 0:
        msg["Subject"] = subject
        msg.set_content(_prose(rng, rng.randint(1, 3), 10, 60))
    elif kind == 1:
        msg["Subject"] = subject
        text = _prose(rng, rng.randint(4, 12))
        msg.set_content(text)
        msg.add_alternative(_html(rng, text), subtype="html")
    elif kind == 2:
        msg["Subject"] = subject
        text = _prose(rng, rng.randint(2, 5))
        cid = email.utils.make_msgid(f"img{i}", "bench.example")
        msg.set_content(text)
        msg.add_alternative(_html(rng, text, cid), subtype="html")
        maintype, subtype, data = _image(rng)
        msg.get_payload()[1].add_related(data, maintype, subtype, cid=cid)
    else:
        msg["Subject"] = subject
        msg.set_content(_prose(rng, rng.randint(1, 3)))
        maintype, subtype, data = _image(rng)
        msg.add_attachment(data, maintype, subtype, filename=f"photo_{i}.{subtype[:3]}")
    return msg.as_bytes(policy=email.policy.default), msg["Message-ID"]


# make_mailbox - COUNT messages for SEED: ([bytes], {kind name: count})
def make_mailbox(count, seed):
    rng = random.Random(seed)
    weights = [share for _, share in KINDS]
    messages, per_kind, ids = [], {name: 0 for name, _ in KINDS}, []
    for i in range(count):
        kind = rng.choices(range(len(KINDS)), weights)[0]
        per_kind[KINDS[kind][0]] += 1
        raw, msgid = _message(rng, seed, i, kind, ids[-50:])
        ids.append(msgid)
        messages.append(raw)
    return messages, per_kind


# imap_session - a logged-in imaplib session on DC's plain port
@contextlib.contextmanager
def imap_session(dc):
    imap = imaplib.IMAP4(dc.host, dc.imap_port, timeout=HANG_GUARD_S)
    try:
        imap.login(USER, PASSWORD)
        yield imap
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            imap.logout()


# inbox_status - (messages, unseen) of the INBOX
def inbox_status(dc):
    with imap_session(dc) as imap:
        typ, data = imap.status("INBOX", "(MESSAGES UNSEEN)")
        found = re.search(rb"MESSAGES (\d+) UNSEEN (\d+)", data[0])
        if typ != "OK" or found is None:
            raise RuntimeError(f"STATUS INBOX: {typ} {data!r}")
        return int(found.group(1)), int(found.group(2))


# mark_all_unseen - take \Seen off every INBOX message (for the next mailbridge pass)
def mark_all_unseen(dc):
    with imap_session(dc) as imap:
        imap.select("INBOX")
        imap.uid("STORE", "1:*", "-FLAGS.SILENT", "(\\Seen)")


# fill_maildir - MESSAGES written straight into the INBOX Maildir's new/
# (tmp/ then rename, as a delivery agent does); Dovecot picks them up at the
# next SELECT, which is done here to check they are all there
def fill_maildir(dc, messages):
    with imap_session(dc) as imap:  # Dovecot creates the Maildir as its mail user
        imap.select("INBOX")
    box = dc.maildir(USER)
    owner = box.stat()
    stamp = int(time.time())
    for i, raw in enumerate(messages):
        name = f"{stamp}.M{i}P{os.getpid()}.mailbridge-bench,S={len(raw)}"
        tmp = box / "tmp" / name
        tmp.write_bytes(raw)
        if os.geteuid() == 0:  # Dovecot reads mail as its own user (see dovecot.py)
            os.chown(tmp, owner.st_uid, owner.st_gid)
        os.rename(tmp, box / "new" / name)
    exists, unseen = inbox_status(dc)
    if exists != len(messages):
        raise RuntimeError(f"Dovecot sees {exists} messages in INBOX, {len(messages)} were written")


class NoResult(Exception):
    """A run that produced no valid figures (mail lost, a program failed)."""


# -- the programs ----------------------------------------------------------------

# timed - run CMD to its end: (CompletedProcess, wall seconds, CPU seconds);
# the CPU time is the child's user + system time (RUSAGE_CHILDREN grows by
# exactly that when it is reaped)
def timed(cmd, **kw):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return proc, wall, cpu


class Sink:
    """http_sink in a temporary directory: port, log_path, posts()."""

    def __init__(self, binary, workdir):
        self.port_file = workdir / "sink.port"
        self.log_path = workdir / "sink.log"
        self.proc = subprocess.Popen([str(binary), "--port-file", str(self.port_file),
                                      "--log", str(self.log_path)])
        deadline = time.monotonic() + HANG_GUARD_S
        while not self.port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"http_sink did not start (exit {self.proc.poll()})")
            time.sleep(0.01)
        self.port = int(self.port_file.read_text())
        self.url = f"http://127.0.0.1:{self.port}"

    # posts - message posts the sink has answered so far
    def posts(self):
        with urllib.request.urlopen(self.url + "/_stats", timeout=HANG_GUARD_S) as resp:
            return json.load(resp)["messages"]

    def close(self):
        self.proc.terminate()
        self.proc.wait()


# mailbox_source - (source URL, route lines) for the TLS mode TLS
def mailbox_source(dc, tls):
    if tls == "implicit":
        return f"imaps://{dc.host}:{dc.imaps_port}/INBOX", f"ca_file = {dc.ca_file}\n"
    if tls == "starttls":
        return f"imap://{dc.host}:{dc.imap_port}/INBOX", f"ca_file = {dc.ca_file}\nstarttls = yes\n"
    return f"imap://{dc.host}:{dc.imap_port}/INBOX", "starttls = no\n"


# write_config - a mailbridge config for one pass: STATE_DIR, the sink as
# the ITX vendor, the INBOX as the route's source
def write_config(path, state_dir, sink, dc, args, log_level):
    source, tls_lines = mailbox_source(dc, args.tls)
    path.write_text(f"""\
# bench_mailbox.py: Dovecot -> mailbridge -> http_sink
state_dir = {state_dir}
log_level = {log_level}
poll_interval = 1h

[connector itx]
type = itx
url = {sink.url}
tokenv2 = x
rcntrl = 1
ccntrl = 1
default_customer = 1

[route support]
connector = itx
source = {source}
user = {USER}
password = {PASSWORD}
processed_action = seen
batch_size = {args.batch}
{tls_lines}""")
    return path


# bare_pass - one bench_imap_fetch run: (messages, bytes, wall, cpu)
def bare_pass(fetcher, dc, args):
    port = dc.imaps_port if args.tls == "implicit" else dc.imap_port
    cmd = [str(fetcher), "--host", dc.host, "--port", str(port), "--user", USER,
           "--password", PASSWORD, "--tls", args.tls, "--batch", str(args.batch)]
    if args.tls != "none":
        cmd += ["--ca-file", dc.ca_file]
    proc, wall, cpu = timed(cmd)
    fields = dict(f.split("=", 1) for f in proc.stdout.split())
    if proc.returncode != 0 or "messages" not in fields:
        raise NoResult(f"bench_imap_fetch failed (exit {proc.returncode}):\n"
                 f"{proc.stdout}{proc.stderr}")
    return int(fields["messages"]), int(fields["bytes"]), wall, cpu


# mailbridge_pass - pass RUN: `mailbridge run --once` (under the command
# prefix WRAPPER, if any) from a fresh state directory over an all-unseen
# INBOX: (wall, cpu, state directory); exits when mail was lost
def mailbridge_pass(mailbridge, dc, sink, workdir, run, count, args, wrapper=()):
    state = workdir / f"state{run}"
    conf = write_config(workdir / f"once{run}.conf", state, sink, dc, args, "warning")
    if run > 0:
        mark_all_unseen(dc)
    before = sink.posts()
    proc, wall, cpu = timed([*wrapper, str(mailbridge), "-c", str(conf), "run", "--once"])
    posts = sink.posts() - before
    exists, unseen = inbox_status(dc)
    problems = []
    if proc.returncode != 0:
        problems.append(f"mailbridge exited {proc.returncode}")
    if posts != count:
        problems.append(f"the vendor received {posts} posts for {count} messages")
    if exists != count or unseen != 0:
        problems.append(f"INBOX holds {exists} messages, {unseen} not \\Seen (expected {count}, 0)")
    if problems:
        raise NoResult("mailbridge run --once did not post and flag every message exactly once "
                       "(mail lost or left behind):\n  " + "\n  ".join(problems)
                       + "\nits stderr (last 40 lines):\n" + "\n".join(proc.stderr.splitlines()[-40:]))
    return wall, cpu, state


# wait_for - poll PREDICATE until true; NoResult once the hang guard expires
def wait_for(predicate, what):
    deadline = time.monotonic() + HANG_GUARD_S
    while not predicate():
        if time.monotonic() > deadline:
            raise NoResult(f"gave up after {HANG_GUARD_S} s waiting for {what}")
        time.sleep(0.001)


# idle_latencies - K appends one at a time to a `mailbridge run` daemon in
# IDLE, each APPEND_GAP_S after the last one arrived: the delays (seconds)
# from the start of each APPEND to the sink's log line for it. STATE is the
# state directory of an earlier pass, so the daemon has nothing old to post.
def idle_latencies(mailbridge, dc, sink, workdir, state, args, rng):
    conf = write_config(workdir / "daemon.conf", state, sink, dc, args, "info")
    daemon_log = workdir / "daemon.log"
    before = sink.posts()
    with open(daemon_log, "w") as log:
        daemon = subprocess.Popen([str(mailbridge), "-c", str(conf), "run"],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    delays = []
    try:
        wait_for(lambda: daemon.poll() is not None or "status=connected" in daemon_log.read_text(),
                 "the daemon to log status=connected")
        time.sleep(0.5)  # into IDLE
        with imap_session(dc) as imap, open(sink.log_path, "rb") as sink_log:
            for i in range(args.appends):
                if daemon.poll() is not None:
                    raise NoResult(f"mailbridge run exited {daemon.returncode}")
                raw = _message(rng, args.seed, args.count + i, 0, [])[0]
                sink_log.seek(0, os.SEEK_END)
                line = b""

                def arrived():
                    nonlocal line
                    line += sink_log.read()
                    return line.endswith(b"\n") or daemon.poll() is not None

                start = time.time_ns()  # CLOCK_REALTIME, like the sink's log
                typ, data = imap.append("INBOX", None, None, raw)
                if typ != "OK":
                    raise RuntimeError(f"APPEND: {typ} {data!r}")
                wait_for(arrived, f"the vendor to receive append {i + 1}")
                if line:
                    delays.append((int(line.split()[0]) - start) / 1e9)
                time.sleep(rng.uniform(*APPEND_GAP_S))
            if daemon.poll() is not None:
                raise NoResult(f"mailbridge run exited {daemon.returncode}")
    except NoResult as err:
        raise NoResult(f"{err}\nmailbridge run log (end):\n{daemon_log.read_text()[-3000:]}") from None
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=HANG_GUARD_S)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
    if daemon.returncode != 0:
        print(f"warning: mailbridge run exited {daemon.returncode} after SIGTERM "
              f"(-9: killed, it did not stop within {HANG_GUARD_S} s); its log (end):\n"
              f"{daemon_log.read_text()[-3000:]}")
    posts = sink.posts() - before
    if posts != args.appends:
        raise NoResult(f"the vendor received {posts} posts for {args.appends} appends\n"
                       f"mailbridge run log (end):\n{daemon_log.read_text()[-3000:]}")
    return delays


# _tagged - send "TAG TEXT" on SOCK and read up to its tagged answer (from
# FILE); raises unless it is OK
def _tagged(sock, file, tag, text):
    sock.sendall(f"{tag} {text}\r\n".encode())
    while True:
        line = file.readline()
        if not line:
            raise RuntimeError(f"IMAP {text.split()[0]}: connection closed")
        if line.startswith(f"{tag} ".encode()):
            if not line.startswith(f"{tag} OK".encode()):
                raise RuntimeError(f"IMAP {text.split()[0]}: {line!r}")
            return


# idle_floor - Dovecot's own part of that delay: as many appends, one at a time,
# to FLOOR_FOLDER while a bare IDLE client (a raw socket: imaplib has no
# IDLE) waits there; the delays (seconds) from the start of each APPEND to
# the "* N EXISTS" line. Another folder, so no mailbridge ever sees them.
def idle_floor(dc, args, rng):
    with imap_session(dc) as appender, socket.create_connection(
            (dc.host, dc.imap_port), timeout=HANG_GUARD_S) as sock:
        appender.create(FLOOR_FOLDER)  # NO if it exists, which is fine
        file = sock.makefile("rb")
        file.readline()  # the greeting
        _tagged(sock, file, "a", f"LOGIN {USER} {PASSWORD}")
        _tagged(sock, file, "b", f"SELECT {FLOOR_FOLDER}")
        delays = []
        for i in range(args.appends):
            raw = _message(rng, args.seed, args.count + args.appends + i, 0, [])[0]
            sock.sendall(b"c IDLE\r\n")
            if not file.readline().startswith(b"+"):
                raise RuntimeError("IMAP IDLE refused")
            time.sleep(rng.uniform(*APPEND_GAP_S))
            start = time.time_ns()
            typ, data = appender.append(FLOOR_FOLDER, None, None, raw)
            if typ != "OK":
                raise RuntimeError(f"APPEND: {typ} {data!r}")
            while b"EXISTS" not in file.readline():
                pass
            delays.append((time.time_ns() - start) / 1e9)
            sock.sendall(b"DONE\r\n")
            while not file.readline().startswith(b"c "):
                pass
        _tagged(sock, file, "d", "LOGOUT")
        return delays


# -- the report --------------------------------------------------------------------

def verdict(ok):
    return "PASS" if ok else "BELOW"


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Dovecot -> mailbridge -> vendor throughput, CPU and IDLE latency "
                    "(figures, never asserted).")
    parser.add_argument("--count", type=int, default=3000, help="messages in the INBOX (default 3000)")
    parser.add_argument("--seed", type=int, default=1, help="the generator's seed (default 1)")
    parser.add_argument("--runs", type=int, default=3,
                        help="passes per side, taking turns; the best counts (default 3)")
    parser.add_argument("--appends", type=int, default=30,
                        help="APPENDs timed under IDLE, one at a time; 0 skips that part (default 30)")
    parser.add_argument("--batch", type=int, default=200,
                        help="UIDs per FETCH for both sides: mailbridge's batch_size (default 200)")
    parser.add_argument("--tls", choices=("none", "starttls", "implicit"), default="none",
                        help="IMAP TLS for both sides (default none: plain IMAP on loopback)")
    parser.add_argument("--build", type=Path,
                        default=Path(os.environ.get("MB_BUILD_DIR", SOURCE_DIR / "build-bench")),
                        help="the build directory (default $MB_BUILD_DIR or build-bench); "
                             "$MAILBRIDGE overrides the mailbridge binary")
    parser.add_argument("--perf", type=Path, metavar="FILE",
                        help="after the measured passes, one more mailbridge pass under "
                             "`perf record --call-graph dwarf -o FILE` (not counted)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.runs < 1 or args.appends < 0 or not 1 <= args.batch <= 5000:
        parser.error("--count and --runs need at least 1, --appends 0 or more, --batch 1..5000")
    return args


TLS_TEXT = {
    "none": "plain IMAP on loopback (starttls = no): no TLS cost on either side",
    "starttls": "IMAP with STARTTLS, certificate verified, on both sides",
    "implicit": "IMAPS (implicit TLS), certificate verified, on both sides",
}


def main(argv=None):
    args = parse_args(argv)
    mailbridge = Path(os.environ.get("MAILBRIDGE") or args.build / "mailbridge")
    fetcher = args.build / "tests" / "bench" / "bench_imap_fetch"
    sink_bin = args.build / "tests" / "bench" / "http_sink"
    for binary in (mailbridge, fetcher, sink_bin):
        if not os.access(binary, os.X_OK):
            sys.exit(f"bench_mailbox: {binary} is missing; build it first (see README.md)")
    if args.perf and shutil.which("perf") is None:
        sys.exit("bench_mailbox: --perf needs perf(1) on $PATH")

    t0 = time.perf_counter()
    messages, per_kind = make_mailbox(args.count, args.seed)
    size = sum(len(m) for m in messages)
    print(f"mailbox: {args.count} messages, {size / 1e6:.1f} MB as Maildir files "
          f"(average {size / args.count / 1e3:.1f} KB), seed {args.seed}, "
          f"generated in {time.perf_counter() - t0:.1f} s")
    for name, n in per_kind.items():
        print(f"  {n:5d} {name}")
    print(f"IMAP:   {TLS_TEXT[args.tls]}; {args.batch} UIDs per FETCH on both sides")
    print("vendor: http_sink (tests/bench/http_sink.c), a minimal C HTTP/1.1 stand-in "
          "answering at once;\n        the Python ITX emulator would be the bottleneck")
    sys.stdout.flush()

    try:
        dc = Dovecot()
    except DovecotUnavailable as err:
        sys.exit(f"bench_mailbox: {err}")
    with dc, tempfile.TemporaryDirectory(prefix="mb-bench-") as tmp:
        workdir = Path(tmp)
        fill_maildir(dc, messages)
        sink = Sink(sink_bin, workdir)
        try:  # a NoResult is mailbridge's failure, not the server's: Dovecot closes cleanly
            bare, mb, last_state = None, None, None
            for run in range(args.runs):  # the sides take turns: load changes hit both
                n, nbytes, wall, cpu = bare_pass(fetcher, dc, args)
                if n != args.count:
                    raise NoResult(f"bench_imap_fetch read {n} of {args.count} messages")
                bare = (min(wall, bare[0]), min(cpu, bare[1]), nbytes) if bare else (wall, cpu, nbytes)
                wall, cpu, last_state = mailbridge_pass(mailbridge, dc, sink, workdir, run,
                                                        args.count, args)
                mb = (min(wall, mb[0]), min(cpu, mb[1])) if mb else (wall, cpu)
            if args.perf:  # one more pass, not counted: perf slows it down
                _, _, last_state = mailbridge_pass(
                    mailbridge, dc, sink, workdir, args.runs, args.count, args,
                    ("perf", "record", "--call-graph", "dwarf", "-o", str(args.perf), "--"))
            delays, floor = [], []
            if args.appends:
                rng = random.Random(args.seed + 1)
                delays = idle_latencies(mailbridge, dc, sink, workdir, last_state, args, rng)
                floor = idle_floor(dc, args, rng)
        except NoResult as err:
            return f"bench_mailbox: no result: {err}"
        finally:
            sink.close()

    n = args.count
    print(f"\nbest of {args.runs} passes per side (least wall time and least CPU time, each on its own)")
    print(f"{'side':28} {'msgs':>6} {'MB':>7} {'wall s':>8} {'msgs/s':>8} {'CPU us/msg':>11}")
    print(f"{'bare libetpan UID FETCH':28} {n:6d} {bare[2] / 1e6:7.1f} {bare[0]:8.2f} "
          f"{n / bare[0]:8.0f} {bare[1] / n * 1e6:11.1f}")
    print(f"{'mailbridge run --once':28} {n:6d} {bare[2] / 1e6:7.1f} {mb[0]:8.2f} "
          f"{n / mb[0]:8.0f} {mb[1] / n * 1e6:11.1f}")
    rate, cpu_us = n / mb[0], mb[1] / n * 1e6
    print(f"\nbare libetpan UID FETCH: {n} msgs, {bare[2] / 1e6:.1f} MB, {bare[0]:.2f} s, "
          f"{n / bare[0]:.0f} msgs/s")
    print(f"mailbridge run --once:   {n} msgs, {mb[0]:.2f} s, {rate:.0f} msgs/s, "
          f"CPU {cpu_us:.0f} µs/msg   (target >= {TARGET_RATE} msgs/s: {verdict(rate >= TARGET_RATE)}; "
          f"CPU < {TARGET_CPU_US} µs: {verdict(cpu_us < TARGET_CPU_US)})")
    print(f"mailbridge/bare: {mb[0] / bare[0]:.1f}x the wall time, {mb[1] / bare[1]:.1f}x the CPU time")
    if delays:
        median, worst = statistics.median(delays), max(delays)
        print(f"APPEND -> vendor under IDLE: median {median * 1e3:.0f} ms, worst {worst * 1e3:.0f} ms "
              f"over {len(delays)}   (target < {TARGET_LATENCY_S:.0f} s: "
              f"{verdict(worst < TARGET_LATENCY_S)})")
        slow = [f"#{i + 1} {d * 1e3:.0f} ms" for i, d in enumerate(delays) if d >= TARGET_LATENCY_S]
        if slow:
            print(f"  over {TARGET_LATENCY_S:.0f} s: {', '.join(slow)}")
        print(f"APPEND -> EXISTS, bare IDLE client: median {statistics.median(floor) * 1e3:.0f} ms, "
              f"worst {max(floor) * 1e3:.0f} ms over {len(floor)}   (Dovecot alone: the floor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

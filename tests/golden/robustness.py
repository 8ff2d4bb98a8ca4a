#!/usr/bin/env python3
"""robustness - `mailbridge parse` survives every message in fixtures/corpora.

One process per set (all of the set's files on one command line; a Maildir
folder is passed as the folder). For each set it asserts:
- the process finished within SET_TIMEOUT (a hang guard, not a speed test),
  exited 0 or 1 (not a signal, not a usage error) and printed no sanitizer
  report (AddressSanitizer, LeakSanitizer, UBSan "runtime error:");
- every output line is a JSON object whose "source" names one input;
- every message file gave exactly one line (a file starting with "From " is
  read as an mbox: at least one line; a Maildir: one per file in it);
- a parsed message has the schema: key (non-empty string), subject, text and
  html (strings), message_id/in_reply_to/date (string or null, date as
  YYYY-MM-DDTHH:MM:SSZ), references and warnings (lists of strings), from
  and sender (null or {name, address}), to/cc/reply_to (lists of those),
  size (integer >= 0), and each attachment a 64-hex sha256, an integer size
  >= 0, string filename and content_type, inline a boolean;
- an error line is {"source", "error": string, "status": "perm"}.
When a set's process dies or reports, each of its files is run alone to
name the culprits. Ends with "N passed, N failed", one count per message
file (a Maildir counts each file in it).

Environment: MAILBRIDGE (the binary), MB_SOURCE_DIR (the repository top).
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mbtest  # noqa: E402

SET_TIMEOUT = 120   # seconds for one set: hang guard
ALONE_TIMEOUT = 60  # seconds for one file run alone while naming a culprit
HEX64 = re.compile(r"^[0-9a-f]{64}$")
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def check_address(a, what):
    """check_address - problems with one {name, address} (or null when allowed)"""
    if not isinstance(a, dict):
        return [f"{what} is not an object"]
    return [f"{what}.{k} is not a string or null" for k in ("name", "address")
            if k not in a or not (a[k] is None or isinstance(a[k], str))]


def check_message(m):
    """check_message - schema problems of one parsed message"""
    p = []
    if not isinstance(m.get("key"), str) or not m["key"]:
        p.append("key is not a non-empty string")
    for k in ("subject", "text", "html"):
        if not isinstance(m.get(k), str):
            p.append(f"{k} is not a string")
    for k in ("message_id", "in_reply_to", "date"):
        if k not in m or not (m[k] is None or isinstance(m[k], str)):
            p.append(f"{k} is not a string or null")
    if isinstance(m.get("date"), str) and not DATE.match(m["date"]):
        p.append(f"date {m['date']!r} is not YYYY-MM-DDTHH:MM:SSZ")
    for k in ("references", "warnings"):
        v = m.get(k)
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            p.append(f"{k} is not a list of strings")
    for k in ("from", "sender"):
        if k not in m:
            p.append(f"{k} is missing")
        elif m[k] is not None:
            p += check_address(m[k], k)
    for k in ("to", "cc", "reply_to"):
        v = m.get(k)
        if not isinstance(v, list):
            p.append(f"{k} is not a list")
        else:
            for i, a in enumerate(v):
                p += check_address(a, f"{k}[{i}]")
    if not isinstance(m.get("size"), int) or m["size"] < 0:
        p.append("size is not an integer >= 0")
    atts = m.get("attachments")
    if not isinstance(atts, list):
        return p + ["attachments is not a list"]
    for i, a in enumerate(atts):
        if not isinstance(a, dict):
            p.append(f"attachments[{i}] is not an object")
            continue
        if not isinstance(a.get("sha256"), str) or not HEX64.match(a["sha256"]):
            p.append(f"attachments[{i}].sha256 is not 64 hex digits")
        if not isinstance(a.get("size"), int) or isinstance(a.get("size"), bool) or a["size"] < 0:
            p.append(f"attachments[{i}].size is not an integer >= 0")
        for k in ("filename", "content_type"):
            if not isinstance(a.get(k), str):
                p.append(f"attachments[{i}].{k} is not a string")
        if not isinstance(a.get("inline"), bool):
            p.append(f"attachments[{i}].inline is not a boolean")
    return p


def check_line(obj):
    """check_line - problems of one output object (message or error)"""
    if "error" in obj:
        p = []
        if not isinstance(obj["error"], str) or not obj["error"]:
            p.append("error is not a non-empty string")
        if obj.get("status") != "perm":
            p.append(f"status is {obj.get('status')!r}, not \"perm\"")
        return p
    return check_message(obj)


def expected_lines(path):
    """expected_lines - (minimum, maximum or None, units) of output lines for one input"""
    if os.path.isdir(path):
        n = sum(len(os.listdir(os.path.join(path, d))) for d in ("cur", "new"))
        return n, n, n
    if mbtest.starts_like_mbox(path):
        return 1, None, 1
    return 1, 1, 1


def inputs_of(name):
    """inputs_of - the command-line inputs of set NAME: Maildir folders as
    folders, every other file as itself"""
    base = os.path.join(mbtest.corpora_dir(), name, "mail")
    folders = sorted({os.path.dirname(os.path.dirname(os.path.join(base, r)))
                      for r in mbtest.set_messages(name)
                      if os.path.basename(os.path.dirname(r)) in ("cur", "new")})
    folders = [f for f in folders if mbtest.is_maildir(f)]
    files = [os.path.join(base, r) for r in mbtest.set_messages(name)
             if not any(os.path.join(base, r).startswith(f + os.sep) for f in folders)]
    return folders + files


def run_problems(rc, stderr, timeout):
    """run_problems - what is wrong with how one process ended"""
    p = []
    if rc is None:
        p.append(f"did not finish within {timeout} s")
    elif rc < 0:
        p.append(f"killed by signal {-rc}")
    elif rc not in (0, 1):
        p.append(f"exit status {rc}")
    san = mbtest.sanitizer_report(stderr)
    if san:
        p.append(f"sanitizer: {san}")
    return p


def check_set(name):
    """check_set - run one set; returns (passed, failed) message counts"""
    paths = inputs_of(name)
    rc, lines, stderr = mbtest.run_parse(paths, SET_TIMEOUT)
    got, problems = mbtest.assign_lines(lines, paths)
    broken = run_problems(rc, stderr, SET_TIMEOUT)
    for p in broken:
        print(f"FAIL {name} process: {p}")
    for p in problems:
        print(f"FAIL {name} output: {p}")
    culprits = set()
    if broken:
        for path in paths:
            arc, _, aerr = mbtest.run_parse([path], ALONE_TIMEOUT)
            for p in run_problems(arc, aerr, ALONE_TIMEOUT):
                print(f"FAIL {name}/{os.path.relpath(path, os.path.join(mbtest.corpora_dir(), name, 'mail'))}"
                      f" alone: {p}")
                culprits.add(path)
    passed = failed = 0
    if broken and not culprits:
        print(f"FAIL {name} process: no single file reproduces it alone")
        failed += 1
    base = os.path.join(mbtest.corpora_dir(), name, "mail")
    for path in paths:
        label = f"{name}/{os.path.relpath(path, base)}"
        lo, hi, units = expected_lines(path)
        objs = got[path]
        bad = []
        if len(objs) < lo or (hi is not None and len(objs) > hi):
            want = str(lo) if hi == lo else f"at least {lo}"
            bad.append(f"expected {want} output line(s) got {len(objs)}")
        for i, o in enumerate(objs):
            for p in check_line(o):
                bad.append(f"message {i + 1}: {p}" if len(objs) > 1 else p)
        if path in culprits:
            bad.append("the process failed on this file alone")
        for b in bad:
            print(f"FAIL {label}: {b}")
        if bad:
            failed += units
        else:
            passed += units
    errors = sum(1 for objs in got.values() for o in objs if "error" in o)
    print(f"# {name}: {len(paths)} inputs, {len(lines)} lines, {errors} error lines, "
          f"exit {rc}")
    return passed, failed


def main():
    """main - every set, then the summary"""
    if not os.access(mbtest.binary(), os.X_OK):
        print(f"FAIL run: no binary at {mbtest.binary()}")
        print("0 passed, 1 failed")
        return 1
    passed = failed = 0
    for name in mbtest.set_names():
        p, f = check_set(name)
        passed += p
        failed += f
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

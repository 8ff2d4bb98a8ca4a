"""mbtest - what golden.py and robustness.py share: where things are, running
`mailbridge parse`, and matching its output lines back to the input files.

`mailbridge parse PATH...` prints one JSON object per message with a "source"
naming the file (and, for an mbox or a Maildir, the position in it). Lines are
matched to files by the longest input path found in "source", so an mbox
member ("/x/box@4096") goes to "/x/box" and "/x/box-0" never to "/x/box".
"""

import json
import os
import subprocess

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


def source_dir():
    """source_dir - the repository top (MB_SOURCE_DIR, else relative to this file)"""
    env = os.environ.get("MB_SOURCE_DIR")
    if env:
        return env
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def corpora_dir():
    """corpora_dir - fixtures/corpora"""
    return os.path.join(source_dir(), "fixtures", "corpora")


def binary():
    """binary - the mailbridge under test (MAILBRIDGE, else build/mailbridge)"""
    return os.environ.get("MAILBRIDGE") or os.path.join(source_dir(), "build", "mailbridge")


def set_names():
    """set_names - the fixture sets, sorted"""
    root = corpora_dir()
    return sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d, "mail")))


def set_messages(name):
    """set_messages - every message file of set NAME as paths relative to its mail/"""
    base = os.path.join(corpora_dir(), name, "mail")
    out = []
    for d, _, files in os.walk(base):
        for f in files:
            out.append(os.path.relpath(os.path.join(d, f), base))
    return sorted(out)


def is_maildir(path):
    """is_maildir - PATH is a directory with cur/ and new/"""
    return os.path.isdir(os.path.join(path, "cur")) and os.path.isdir(os.path.join(path, "new"))


def starts_like_mbox(path):
    """starts_like_mbox - the file begins with an mbox "From " line, so the
    parser reads it as an mbox and may find more than one message in it"""
    with open(path, "rb") as f:
        return f.read(5) == b"From "


def run_parse(paths, timeout):
    """run_parse - run `mailbridge parse PATHS...` once; returns (returncode or
    None on timeout, stdout lines, stderr text)"""
    try:
        p = subprocess.run([binary(), "parse", *paths], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        err = (e.stderr or b"").decode("utf-8", "replace")
        return None, out.splitlines(), err
    return (p.returncode, p.stdout.decode("utf-8", "replace").splitlines(),
            p.stderr.decode("utf-8", "replace"))


def sanitizer_report(stderr):
    """sanitizer_report - the first sanitizer line in STDERR, or None"""
    for line in stderr.splitlines():
        if any(m in line for m in SANITIZER_MARKS):
            return line.strip()
    return None


def assign_lines(lines, paths):
    """assign_lines - parse LINES as JSON and give each to the input path its
    "source" names. Returns ({path: [objects in output order]}, [problems])
    where a problem is a line that is not a JSON object or names no input."""
    keys = {}
    for p in paths:
        keys[os.path.abspath(p)] = p
        keys[os.path.realpath(p)] = p
    by_len = sorted(keys, key=len, reverse=True)
    got = {p: [] for p in paths}
    problems = []
    for n, line in enumerate(lines, 1):
        try:
            obj = json.loads(line)
        except ValueError as e:
            problems.append(f"line {n} is not JSON ({e}): {line[:120]!r}")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("source"), str):
            problems.append(f"line {n} has no \"source\": {line[:120]!r}")
            continue
        src = obj["source"]
        for k in by_len:
            if k in src:
                got[keys[k]].append(obj)
                break
        else:
            problems.append(f"line {n} names no input: source {src!r}")
    return got, problems

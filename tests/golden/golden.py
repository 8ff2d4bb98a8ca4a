#!/usr/bin/env python3
"""golden - `mailbridge parse` against what other parsers' test suites state.

Runs the binary ONCE over every golden message (fixtures/corpora/<set>/mail/
files that have an expected/<path>.json, written by convert_expectations.py),
matches output lines to files by "source", and compares only the fields each
expectation states. Prints one line per mismatch:
    FAIL <set>/<path>[#N] <field>: expected <X> got <Y>
(#N numbers the messages of an mbox), then "N passed, N failed", one count
per message. Mismatches listed in known_differences.json (message, field,
reason) are printed as KNOWN and do not fail; an entry that no longer
matches anything is printed as STALE so the list stays short.

A few whole classes of difference are RULES instead of entries (see RULES
below): each accepts a mismatch only after checking the raw message really
has the form the rule is about, and is printed as
    RULE <set>/<path>[#N] <field>: <rule>

Normalization (documented in README.md): subject, display names, text and
html are compared after CRLF/CR -> LF and collapsing every run of
whitespace to one space, stripped at both ends; content types are compared
lower-case. Everything else is compared exactly.

Environment: MAILBRIDGE (the binary), MB_SOURCE_DIR (the repository top).
Exit status 0 when nothing failed, 1 otherwise.
"""

import email
import email.header
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mbtest  # noqa: E402

RUN_TIMEOUT = 900  # seconds for the whole run: a hang guard, not a speed test

# Classes of difference that are not our bug, each accepted only where the
# raw message shows the form it is about (the checks are in the functions
# named here). Printed as RULE lines; README.md explains each.
RULES = {
    "comment-name":
        "the address is written 'addr (Full Name)', an addr-spec with a trailing "
        "comment (RFC 5322 3.4, CFWS) that by long practice carries the person's "
        "name; we take it as the display name, as gmime and Python's "
        "email.utils.parseaddr do; mailcore2 gives no name",
    "lossy-fffd":
        "the source states U+FFFD for bytes that are not UTF-8 but are valid "
        "windows-1252/Latin-1 (undeclared raw 8-bit, or mislabeled as UTF-8); we "
        "decode them, which loses nothing (stalwart's expectation is lossy)",
    "path-filename":
        "the raw file name has path components ('/etc/passwd'); we keep only its "
        "last component, on purpose: a name must never point outside the folder "
        "it is saved to",
    "mbox-separator":
        "the upstream single-file copy of this mbox member keeps the line end "
        "that RFC 4155 gives to the mbox separator; it shows only as one more "
        "trailing <br> in the HTML we derive from the text",
}

# fields compared when a message must parse "same_as" another file
SAME_FIELDS = ("message_id", "in_reply_to", "references", "subject", "date", "from",
               "sender", "reply_to", "to", "cc", "text", "html", "attachments")


def norm_ws(s):
    """norm_ws - CRLF/CR to LF, whitespace runs to one space, stripped"""
    if not isinstance(s, str):
        return s
    return " ".join(s.replace("\r\n", "\n").replace("\r", "\n").split())


def short(v, limit=160):
    """short - V as JSON, cut to LIMIT characters"""
    s = json.dumps(v, ensure_ascii=False)
    return s if len(s) <= limit else s[:limit] + "...(" + str(len(s)) + " chars)"


def first_diff(a, b):
    """first_diff - the two strings around their first difference"""
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    lo = max(0, i - 40)
    return a[lo:i + 80], b[lo:i + 80], i


class Evidence:
    """Evidence - the raw bytes of one message, for the RULES to check
    their claims against (None when the bytes cannot be found)"""

    def __init__(self, raw):
        self.raw = raw
        self._fields = None
        self._texts = None

    def fields(self, name):
        """fields - the unfolded raw values (bytes) of every header field NAME"""
        if self._fields is None:
            self._fields = []
            raw = self.raw or b""
            if raw.startswith(b"From "):
                raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
            head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
            for line in re.split(rb"\r?\n", head):
                if line[:1] in (b" ", b"\t") and self._fields:
                    self._fields[-1][1] += line
                elif b":" in line:
                    n, v = line.split(b":", 1)
                    self._fields.append([n.strip().lower(), v])
        return [v for n, v in self._fields if n == name.lower().encode()]

    def texts(self):
        """texts - the transfer-decoded bytes of every text/* leaf"""
        if self._texts is None:
            self._texts = []
            if self.raw:
                for part in email.message_from_bytes(self.raw).walk():
                    if not part.is_multipart() and part.get_content_maintype() == "text":
                        data = part.get_payload(decode=True)
                        if isinstance(data, bytes):
                            self._texts.append(data)
        return self._texts


def is_utf8(b):
    """is_utf8 - the bytes B are valid UTF-8"""
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def single_byte(c):
    """single_byte - the one windows-1252 (else Latin-1) byte >= 0x80 that
    decodes to the character C, or None"""
    for codec in ("cp1252", "latin-1"):
        try:
            b = c.encode(codec)
        except UnicodeEncodeError:
            continue
        if len(b) == 1 and b[0] >= 0x80:
            return b
    return None


def rule_lossy_fffd(exp, got, sources):
    """rule_lossy_fffd - EXP states U+FFFD where GOT has one character that
    is a single windows-1252/Latin-1 byte, and that byte occurs in one of
    SOURCES (raw header values or decoded bodies) that is not valid UTF-8"""
    if not isinstance(exp, str) or not isinstance(got, str) or "\ufffd" not in exp:
        return False
    pattern = "(.)".join(re.escape(piece) for piece in norm_ws(exp).split("\ufffd"))
    m = re.fullmatch(pattern, norm_ws(got), re.S)
    if not m:
        return False
    bad = [b for b in sources if not is_utf8(b)]
    for c in m.groups():
        b = single_byte(c)
        if b is None or not any(b in src for src in bad):
            return False
    return True


def rule_comment_name(exp, got, values):
    """rule_comment_name - EXP has no name, GOT names the same address, and
    one raw field value in VALUES writes that address as 'addr (comment)'
    with the comment (RFC 2047 decoded) equal to GOT's name"""
    if exp.get("name") is not None or not got.get("name") or exp.get("address") is None:
        return False
    if exp.get("address") != got.get("address"):
        return False
    pat = re.compile(r"(?:^|[\s,])" + re.escape(exp["address"]) +
                     r"\s*\(((?:[^()\\]|\\.)*)\)", re.I)
    for v in values:
        for m in pat.finditer(v.decode("latin-1")):
            try:
                comment = str(email.header.make_header(email.header.decode_header(m.group(1))))
            except (LookupError, UnicodeError, ValueError):
                continue
            if norm_ws(comment) == norm_ws(got["name"]):
                return True
    return False


def norm_addr(a, keys):
    """norm_addr - an address dict reduced to KEYS, names whitespace-normalized"""
    if not isinstance(a, dict):
        return a
    out = {}
    for k in keys:
        v = a.get(k)
        out[k] = norm_ws(v) if k == "name" else v
    return out


def cmp_address(exp, got, values, rules):
    """cmp_address - compare one {name, address}; name only when stated.
    VALUES are the raw field values for the rules; a rule that made it
    match is added to RULES."""
    if exp is None or got is None:
        return exp == got
    keys = [k for k in ("name", "address") if k in exp]
    if norm_addr(exp, keys) == norm_addr(got, keys):
        return True
    if not isinstance(got, dict) or exp.get("address") != got.get("address"):
        return False
    if "name" in exp and rule_comment_name(exp, got, values):
        rules.add("comment-name")
        return True
    if "name" in exp and rule_lossy_fffd(exp.get("name"), got.get("name"), values):
        rules.add("lossy-fffd")
        return True
    return False


def cmp_address_list(exp, got, values, rules):
    """cmp_address_list - compare lists of addresses in order"""
    if not isinstance(got, list) or len(exp) != len(got):
        return False
    found = set()
    if all(cmp_address(e, g, values, found) for e, g in zip(exp, got)):
        rules |= found
        return True
    return False


def att_matches(exp, got, ev, rules):
    """att_matches - GOT has every key EXP states, with the same value (a
    file name with path components: its last one, see path-filename)"""
    found = set()
    for k, v in exp.items():
        g = got.get(k)
        if k == "content_type":
            if not isinstance(g, str) or g.lower() != v.lower():
                return False
        elif k == "filename" and g != v and re.search(r"[/\\]", v):
            if g != re.split(r"[/\\]", v)[-1] or ev.raw is None or v.encode() not in ev.raw:
                return False
            found.add("path-filename")
        elif g != v:
            return False
    rules |= found
    return True


def att_summary(a):
    """att_summary - the comparable fields of an actual attachment"""
    return {k: a.get(k) for k in ("filename", "content_type", "size", "content_id")}


def cmp_attachments(exp, got, ev, rules):
    """cmp_attachments - every expected attachment matches a distinct actual one;
    returns None or a description of the first one missing"""
    if not isinstance(got, list):
        return "attachments is not a list"
    used = set()
    for e in exp:
        for i, g in enumerate(got):
            if i not in used and isinstance(g, dict) and att_matches(e, g, ev, rules):
                used.add(i)
                break
        else:
            return (f"expected {short(e)} got " +
                    short([att_summary(g) for g in got if isinstance(g, dict)], 400))
    return None


HEADER_OF = {"subject": "Subject", "from": "From", "sender": "Sender", "to": "To",
             "cc": "Cc", "reply_to": "Reply-To"}


def compare_field(field, exp, got, ev, rules):
    """compare_field - None when GOT satisfies EXP for FIELD, else (X, Y) to
    print. EV is the message's Evidence; a rule that made it match is added
    to RULES."""
    values = ev.fields(HEADER_OF[field]) if field in HEADER_OF else []
    if field in ("subject",):
        ok = norm_ws(exp) == norm_ws(got)
        if not ok and rule_lossy_fffd(exp, got, values):
            rules.add("lossy-fffd")
            ok = True
    elif field in ("text", "html"):
        a, b = norm_ws(exp), norm_ws(got)
        if a == b:
            return None
        if rule_lossy_fffd(exp, got, ev.texts()):
            rules.add("lossy-fffd")
            return None
        if isinstance(a, str) and isinstance(b, str):
            x, y, i = first_diff(a, b)
            return (short(x) + f" (at {i} of {len(a)})", short(y) + f" (of {len(b)})")
        return short(exp), short(got)
    elif field in ("from", "sender"):
        ok = cmp_address(exp, got, values, rules)
    elif field in ("to", "cc", "reply_to"):
        ok = cmp_address_list(exp, got, values, rules)
    elif field == "attachments":
        msg = cmp_attachments(exp, got, ev, rules)
        return None if msg is None else (msg, "")
    elif field == "attachment_count":
        n = len(got) if isinstance(got, list) else None
        return None if n == exp else (str(exp), str(n))
    else:
        ok = exp == got
    return None if ok else (short(exp), short(got))


def source_path(obj):
    """source_path - (file path, mbox offset or None) named by a parse
    output's "source" ("file:/p", "mbox:/p@N")"""
    src = obj.get("source", "")
    kind, _, rest = src.partition(":")
    if kind == "mbox" and "@" in rest:
        path, _, off = rest.rpartition("@")
        return path, int(off)
    return rest, None


def message_bytes(obj):
    """message_bytes - the raw bytes of the message OBJ was parsed from (an
    mbox member without its From_ line, obj["size"] bytes), or None"""
    path, off = source_path(obj)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if off is None:
        return data
    data = data[off:]
    if data.startswith(b"From "):
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return data[:obj.get("size", len(data))]


def rule_mbox_separator(ref, got):
    """rule_mbox_separator - the single file REF parsed from is the mbox
    member GOT parsed from plus one line end (the separator's, RFC 4155)"""
    a, b = message_bytes(ref), message_bytes(got)
    return a is not None and b is not None and a in (b + b"\n", b + b"\r\n")


def compare_message(exp, got, outputs, rules):
    """compare_message - [(field, expected, got)] for every stated field GOT misses.
    OUTPUTS maps a path under the set's mail/ to that file's parsed messages
    (for same_as). RULES gets {field: set of rules} that made a field match."""
    fails = []
    if "error" in got:
        return [("parse", "a parsed message", short(got))]
    if "same_as" in exp:
        other = outputs.get(exp["same_as"])
        if not other or "error" in other[0]:
            return [("same_as", exp["same_as"] + " parsed", short(other))]
        ref = other[0]
        ev = Evidence(None)  # both sides are ours: no rule but mbox-separator applies
        for f in SAME_FIELDS:
            a, b = ref.get(f), got.get(f)
            used = set()
            if f == "attachments":
                a = [att_summary(x) for x in a or []]
                b = [att_summary(x) for x in b or []]
                r = None if a == b else (short(a), short(b))
            else:
                r = compare_field(f, a, b, ev, used)
            if (r and f == "html" and isinstance(a, str) and isinstance(b, str) and
                    norm_ws(a) == norm_ws(b + "<br>") and rule_mbox_separator(ref, got)):
                used.add("mbox-separator")
                r = None
            if r:
                fails.append((f, r[0], r[1]))
            elif used:
                rules[f] = used
        return fails
    ev = Evidence(message_bytes(got))
    for field, value in exp.items():
        src = "attachments" if field == "attachment_count" else field
        used = set()
        r = compare_field(field, value, got.get(src), ev, used)
        if r:
            fails.append((field, r[0], r[1]))
        elif used:
            rules[field] = used
    return fails


def load_known(path):
    """load_known - known_differences.json as {(message, field): reason}"""
    with open(path, encoding="utf-8") as f:
        entries = json.load(f)
    known = {}
    for e in entries:
        if not e.get("reason"):
            raise SystemExit(f"known_differences.json: {e} has no reason")
        known[(e["message"], e["field"])] = e["reason"]
    return known


def load_golden():
    """load_golden - [(set, rel, expectation)] for every expected/*.json"""
    out = []
    for name in mbtest.set_names():
        base = os.path.join(mbtest.corpora_dir(), name, "expected")
        for d, _, files in os.walk(base):
            for f in sorted(files):
                if f.endswith(".json"):
                    p = os.path.join(d, f)
                    with open(p, encoding="utf-8") as fh:
                        out.append((name, os.path.relpath(p, base)[:-len(".json")],
                                    json.load(fh)))
    return sorted(out, key=lambda t: (t[0], t[1]))


def main():
    """main - run, compare, summarize"""
    here = os.path.dirname(os.path.abspath(__file__))
    known = load_known(os.path.join(here, "known_differences.json"))
    golden = load_golden()
    if not os.access(mbtest.binary(), os.X_OK):
        print(f"FAIL run: no binary at {mbtest.binary()}")
        print(f"0 passed, {sum(len(g[2]['messages']) for g in golden)} failed")
        return 1

    # every file to parse: the golden ones and the ones same_as points at
    files = {}
    for name, rel, exp in golden:
        files[(name, rel)] = None
        for m in exp["messages"]:
            if "same_as" in m:
                files[(name, m["same_as"])] = None
    paths = {k: os.path.join(mbtest.corpora_dir(), k[0], "mail", k[1]) for k in files}
    rc, lines, stderr = mbtest.run_parse(sorted(paths.values()), RUN_TIMEOUT)
    got, problems = mbtest.assign_lines(lines, list(paths.values()))

    failed = passed = 0
    run_broken = False
    if rc is None:
        print(f"FAIL run: mailbridge parse did not finish within {RUN_TIMEOUT} s")
        run_broken = True
    elif rc not in (0, 1):
        print(f"FAIL run: mailbridge parse exited with {rc}" +
              (" (killed by a signal)" if rc < 0 else ""))
        run_broken = True
    san = mbtest.sanitizer_report(stderr)
    if san:
        print(f"FAIL run: sanitizer report: {san}")
        run_broken = True
    for p in problems:
        print(f"FAIL run: {p}")
        run_broken = True

    outputs = {}
    for (name, rel), p in paths.items():
        outputs.setdefault(name, {})[rel] = got[p]
    used_known = set()
    rule_count = {}
    for name, rel, exp in golden:
        objs = outputs[name][rel]
        msgs = exp["messages"]
        count_ok = len(objs) == len(msgs)
        if not count_ok:
            print(f"FAIL {name}/{rel} count: expected {len(msgs)} messages got {len(objs)}")
        for i, m in enumerate(msgs):
            label = f"{name}/{rel}" + (f"#{i + 1}" if len(msgs) > 1 else "")
            if i >= len(objs):
                failed += 1
                continue
            bad = not count_ok
            rules = {}
            fails = compare_message(m, objs[i], outputs[name], rules)
            for field in sorted(rules):
                for r in sorted(rules[field]):
                    print(f"RULE {label} {field}: {r}")
                    rule_count[r] = rule_count.get(r, 0) + 1
            for field, x, y in fails:
                if (label, field) in known:
                    used_known.add((label, field))
                    print(f"KNOWN {label} {field}: {known[(label, field)]}")
                    continue
                print(f"FAIL {label} {field}: expected {x} got {y}")
                bad = True
            if bad:
                failed += 1
            else:
                passed += 1
    for r in sorted(rule_count):
        print(f"RULE {r} ({rule_count[r]} fields): {RULES[r]}")
    for k in sorted(set(known) - used_known):
        print(f"STALE known difference {k[0]} {k[1]}: it matches now, remove the entry")
    if run_broken and stderr.strip():
        print("stderr of the run (last lines):")
        print("\n".join(stderr.strip().splitlines()[-20:]))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or run_broken else 0


if __name__ == "__main__":
    sys.exit(main())

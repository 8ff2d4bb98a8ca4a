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

Normalization (documented in README.md): subject, display names, text and
html are compared after CRLF/CR -> LF and collapsing every run of
whitespace to one space, stripped at both ends; content types are compared
lower-case. Everything else is compared exactly.

Environment: MAILBRIDGE (the binary), MB_SOURCE_DIR (the repository top).
Exit status 0 when nothing failed, 1 otherwise.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mbtest  # noqa: E402

RUN_TIMEOUT = 900  # seconds for the whole run: a hang guard, not a speed test

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


def norm_addr(a, keys):
    """norm_addr - an address dict reduced to KEYS, names whitespace-normalized"""
    if not isinstance(a, dict):
        return a
    out = {}
    for k in keys:
        v = a.get(k)
        out[k] = norm_ws(v) if k == "name" else v
    return out


def cmp_address(exp, got):
    """cmp_address - compare one {name, address}; name only when stated"""
    if exp is None or got is None:
        return exp == got
    keys = [k for k in ("name", "address") if k in exp]
    return norm_addr(exp, keys) == norm_addr(got, keys)


def cmp_address_list(exp, got):
    """cmp_address_list - compare lists of addresses in order"""
    if not isinstance(got, list) or len(exp) != len(got):
        return False
    return all(cmp_address(e, g) for e, g in zip(exp, got))


def att_matches(exp, got):
    """att_matches - GOT has every key EXP states, with the same value"""
    for k, v in exp.items():
        g = got.get(k)
        if k == "content_type":
            if not isinstance(g, str) or g.lower() != v.lower():
                return False
        elif g != v:
            return False
    return True


def att_summary(a):
    """att_summary - the comparable fields of an actual attachment"""
    return {k: a.get(k) for k in ("filename", "content_type", "size", "content_id")}


def cmp_attachments(exp, got):
    """cmp_attachments - every expected attachment matches a distinct actual one;
    returns None or a description of the first one missing"""
    if not isinstance(got, list):
        return "attachments is not a list"
    used = set()
    for e in exp:
        for i, g in enumerate(got):
            if i not in used and isinstance(g, dict) and att_matches(e, g):
                used.add(i)
                break
        else:
            return (f"expected {short(e)} got " +
                    short([att_summary(g) for g in got if isinstance(g, dict)], 400))
    return None


def compare_field(field, exp, got):
    """compare_field - None when GOT satisfies EXP for FIELD, else (X, Y) to print"""
    if field in ("subject",):
        ok = norm_ws(exp) == norm_ws(got)
    elif field in ("text", "html"):
        a, b = norm_ws(exp), norm_ws(got)
        if a == b:
            return None
        if isinstance(a, str) and isinstance(b, str):
            x, y, i = first_diff(a, b)
            return (short(x) + f" (at {i} of {len(a)})", short(y) + f" (of {len(b)})")
        return short(exp), short(got)
    elif field in ("from", "sender"):
        ok = cmp_address(exp, got)
    elif field in ("to", "cc", "reply_to"):
        ok = cmp_address_list(exp, got)
    elif field == "attachments":
        msg = cmp_attachments(exp, got)
        return None if msg is None else (msg, "")
    elif field == "attachment_count":
        n = len(got) if isinstance(got, list) else None
        return None if n == exp else (str(exp), str(n))
    else:
        ok = exp == got
    return None if ok else (short(exp), short(got))


def compare_message(exp, got, outputs):
    """compare_message - [(field, expected, got)] for every stated field GOT misses.
    OUTPUTS maps a path under the set's mail/ to that file's parsed messages
    (for same_as)."""
    fails = []
    if "error" in got:
        return [("parse", "a parsed message", short(got))]
    if "same_as" in exp:
        other = outputs.get(exp["same_as"])
        if not other or "error" in other[0]:
            return [("same_as", exp["same_as"] + " parsed", short(other))]
        ref = other[0]
        for f in SAME_FIELDS:
            a, b = ref.get(f), got.get(f)
            if f == "attachments":
                a = [att_summary(x) for x in a or []]
                b = [att_summary(x) for x in b or []]
                r = None if a == b else (short(a), short(b))
            else:
                r = compare_field(f, a, b)
            if r:
                fails.append((f, r[0], r[1]))
        return fails
    for field, value in exp.items():
        src = "attachments" if field == "attachment_count" else field
        r = compare_field(field, value, got.get(src))
        if r:
            fails.append((field, r[0], r[1]))
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
            for field, x, y in compare_message(m, objs[i], outputs[name]):
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
    for k in sorted(set(known) - used_known):
        print(f"STALE known difference {k[0]} {k[1]}: it matches now, remove the entry")
    if run_broken and stderr.strip():
        print("stderr of the run (last lines):")
        print("\n".join(stderr.strip().splitlines()[-20:]))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or run_broken else 0


if __name__ == "__main__":
    sys.exit(main())

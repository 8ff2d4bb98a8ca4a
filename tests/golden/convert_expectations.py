#!/usr/bin/env python3
"""convert_expectations - build fixtures/corpora from the shared corpora.

One-off tool (kept so the fixtures can be regenerated and audited): copies the
selected messages and each set's licence files into fixtures/corpora/<set>/,
and turns each golden set's own expectation format into one normalized file
per message, fixtures/corpora/<set>/expected/<path under mail/>.json.

    tests/golden/convert_expectations.py [--corpora /work/shared/corpora]
                                         [--out fixtures/corpora]

Python 3.11 standard library only. The output is deterministic: running it
twice gives the same bytes. Layout of one set:

    <set>/LICENSE...          licence files, copied unchanged
    <set>/mail/...            the messages, copied byte for byte
    <set>/expected/...json    golden sets only: what the source states

A normalized expectation file is
    {"origin": "<the source file(s) the values come from>",
     "messages": [ {<field>: <value>, ...}, ... ]}
with one entry per message in the file (an mbox gives several). An entry
holds only the fields the source states; golden.py compares exactly those.
Fields: message_id, in_reply_to, references, subject, date (UTC
"YYYY-MM-DDTHH:MM:SSZ"), from, sender ({"name","address"}; "name" only when
the source states it), to, cc, reply_to (lists of the same), text, html,
attachments (each {content_type, filename, content_id, size, sha256}, only
the keys the source states) and same_as ("<path under mail/>": the message
must parse exactly like that other file, used for mbox splits).

What is deliberately NOT turned into an expectation (never invent one):
- mailcore2: the placeholder Message-ID "MyMessageID123@mail.gmail.com" and
  date 978307200 (2001-01-01) that mailcore's test mode writes when the
  header is absent; dates after 2050 (mailcore adds 100 years to two-digit
  years: "19 Sep 91" becomes 2091); the part tree inside an attached
  message; "type/unknown" (mailcore's filler when the subtype is missing);
  text/* leaves without a file name (body or attachment is a
  policy choice, not a fact); attachment sizes (mailcore states none).
- stalwart: text/html bodies unless exactly one part of the right kind is
  listed (stalwart converts HTML to text and back); sizes of Text/Html/
  Message parts (stalwart states them charset-decoded, we count bytes) and
  of x-uuencode parts (stalwart leaves them encoded);
  file names containing U+FFFD (stalwart's rendering of undeclared 8-bit).
- mime4j: header fields (mime4j states raw header text, not parsed values);
  text bodies whose charset Python cannot decode; sizes of text parts
  (line endings in its dumps differ from the wire form).
"""

import argparse
import datetime
import email.parser
import email.utils
import hashlib
import json
import os
import shutil
import sys
import xml.etree.ElementTree as ET

MAX_SIZE = 200 * 1024  # prefer small messages: the fixtures stay < 15 MB

# Larger messages kept on purpose: each exists upstream to catch a crash,
# hang or memory blow-up, which is exactly what robustness.py looks for.
BIG_OK = {
    "flanker/tests/fixtures/messages/enclosed-endless.eml",   # 3,045 nested message/rfc822
    "flanker/tests/fixtures/messages/long-header.eml",        # one 200 KB header field
    "nodemailer-mailparser/test/fixtures/htmllargecallstack.eml",  # HTML that blew the stack
    "nodemailer-mailparser/test/fixtures/outofmemory.eml",    # HTML that ran out of memory
    "nodemailer-mailparser/test/fixtures/large_text.eml",     # 1.1 MB text body (mbox form)
}

MAILCORE_FAKE_ID = "MyMessageID123@mail.gmail.com"
MAILCORE_FAKE_DATE = 978307200
YEAR_2050 = 2524608000


# ---------------------------------------------------------------- helpers

def utc_iso(ts):
    """utc_iso - a POSIX timestamp as UTC YYYY-MM-DDTHH:MM:SSZ"""
    d = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc_date_utc(text):
    """rfc_date_utc - an RFC 5322 date string (as written by another parser) in UTC, or None"""
    try:
        d = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if d is None or d.tzinfo is None:
        return None
    return utc_iso(d.timestamp())


def sha256(data):
    """sha256 - lower-case hex digest of DATA"""
    return hashlib.sha256(data).hexdigest()


def write_json(path, obj):
    """write_json - write OBJ as stable, readable UTF-8 JSON"""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.write("\n")


def copy_file(src, dst):
    """copy_file - byte-exact copy, creating directories"""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)


def walk_files(root):
    """walk_files - every file under ROOT as a sorted list of relative paths"""
    out = []
    for d, _, files in os.walk(root):
        for f in files:
            out.append(os.path.relpath(os.path.join(d, f), root))
    return sorted(out)


# ---------------------------------------------------------------- mailcore2

def mailcore_addr(a):
    """mailcore_addr - a mailcore::Address as {name, address}"""
    return {"name": a.get("displayName"), "address": a.get("mailbox")}


def mailcore_list(v):
    """mailcore_list - a mailcore::Array of addresses"""
    return [mailcore_addr(a) for a in v.get("items", [])]


def mailcore_attachments(part, out, root):
    """mailcore_attachments - collect expected attachments from PART's tree.

    Leaves with a file name are attachments; non-text leaves without one are
    too (with their type only). An attached message is one message/rfc822
    attachment; its inside is not ours to compare."""
    cls = part.get("class")
    if cls == "mailcore::Multipart":
        for child in part.get("parts", {}).get("items", []):
            mailcore_attachments(child, out, False)
        return
    if cls == "mailcore::MessagePart":
        if not root:
            out.append({"content_type": "message/rfc822"})
        return
    mime = part.get("mimeType", "").lower()
    att = {}
    if part.get("filename"):
        att["filename"] = part["filename"]
    elif mime.startswith("text/") or root or "/" not in mime:
        return
    if not mime.endswith("/unknown"):  # mailcore's filler for a missing subtype
        att["content_type"] = mime
    if part.get("contentID"):
        att["content_id"] = part["contentID"]
    out.append(att)


def convert_mailcore(path):
    """convert_mailcore - one mailcore parser/output JSON file"""
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    h = j["header"]
    e = {}
    if h.get("messageID") and h["messageID"] != MAILCORE_FAKE_ID:
        e["message_id"] = h["messageID"]
    if "inReplyTo" in h:
        e["in_reply_to"] = h["inReplyTo"][0] if h["inReplyTo"] else None
    if "references" in h:
        e["references"] = list(h["references"])
    if "subject" in h:
        e["subject"] = h["subject"]
    if "date" in h:
        ts = int(h["date"])
        if ts != MAILCORE_FAKE_DATE and ts < YEAR_2050:
            e["date"] = utc_iso(ts)
    for src, dst in (("from", "from"), ("sender", "sender")):
        if src in h:
            e[dst] = mailcore_addr(h[src])
    for src, dst in (("to", "to"), ("cc", "cc"), ("replyTo", "reply_to")):
        if src in h:
            e[dst] = mailcore_list(h[src])
    atts = []
    mailcore_attachments(j["mainPart"], atts, True)
    if atts:
        e["attachments"] = atts
    return e


# ---------------------------------------------------------------- stalwart

def stalwart_headers(part):
    """stalwart_headers - PART's parsed headers by name (first occurrence)"""
    hs = {}
    for h in part["headers"]:
        if isinstance(h["name"], str) and h["name"] not in hs:
            hs[h["name"]] = h["value"]
    return hs


def stalwart_attr(ct, name):
    """stalwart_attr - the attribute NAME of a ContentType value, or None"""
    for a in (ct or {}).get("attributes") or []:
        if a["name"].lower() == name:
            return a["value"]
    return None


def stalwart_date(v):
    """stalwart_date - a DateTime value in UTC; None for Empty (unparsable)"""
    if not isinstance(v, dict) or "DateTime" not in v:
        return None
    d = v["DateTime"]
    local = datetime.datetime(d["year"], d["month"], d["day"], d["hour"], d["minute"],
                              d["second"], tzinfo=datetime.timezone.utc)
    off = datetime.timedelta(hours=d["tz_hour"], minutes=d["tz_minute"])
    utc = local + off if d["tz_before_gmt"] else local - off
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def stalwart_addrs(v):
    """stalwart_addrs - an Address value as a list of {name, address}"""
    a = v.get("Address", {}) if isinstance(v, dict) else {}
    if "List" in a:
        return [{"name": x.get("name"), "address": x.get("address")} for x in a["List"]]
    return None  # groups and anything else: not compared


def stalwart_text(v):
    """stalwart_text - a Text header value, or None"""
    return v.get("Text") if isinstance(v, dict) else None


# transfer encodings stalwart decodes; for others (x-uuencode) its "decoded"
# bytes are the encoded text, so they give no size or digest
STALWART_DECODES = ("7bit", "8bit", "binary", "base64", "quoted-printable")


def convert_stalwart(path):
    """convert_stalwart - one stalwart .json expectation (the LF form)"""
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    parts = j["parts"]
    hs = stalwart_headers(parts[0])
    e = {}
    if "message_id" in hs and stalwart_text(hs["message_id"]) is not None:
        e["message_id"] = stalwart_text(hs["message_id"])
    if "subject" in hs and stalwart_text(hs["subject"]) is not None:
        e["subject"] = stalwart_text(hs["subject"])
    if "date" in hs:
        e["date"] = stalwart_date(hs["date"])
    if "from" in hs:
        lst = stalwart_addrs(hs["from"])
        if lst:
            e["from"] = lst[0]
    for name in ("to", "cc", "reply_to"):
        if name in hs:
            lst = stalwart_addrs(hs[name])
            if lst is not None:
                e[name] = lst
    # bodies: only a single part of the matching kind is a stated body
    if len(j["text_body"]) == 1:
        b = parts[j["text_body"][0]]["body"]
        if isinstance(b, dict) and "Text" in b:
            e["text"] = b["Text"]
    if len(j["html_body"]) == 1:
        b = parts[j["html_body"][0]]["body"]
        if isinstance(b, dict) and "Html" in b:
            e["html"] = b["Html"]
    atts = []
    for i in j["attachments"]:
        p = parts[i]
        ph = stalwart_headers(p)
        body = p["body"]
        kind = body if isinstance(body, str) else next(iter(body))
        att = {}
        ct = ph.get("content_type", {}).get("ContentType") if isinstance(
            ph.get("content_type"), dict) else None
        if ct and ct.get("c_subtype"):
            att["content_type"] = (ct["c_type"] + "/" + ct["c_subtype"]).lower()
        elif kind == "Message":
            att["content_type"] = "message/rfc822"
        cd = ph.get("content_disposition", {}).get("ContentType") if isinstance(
            ph.get("content_disposition"), dict) else None
        fn = stalwart_attr(cd, "filename") or stalwart_attr(ct, "name")
        if fn and "\ufffd" not in fn:
            att["filename"] = fn
        cid = stalwart_text(ph.get("content_id"))
        if cid:
            att["content_id"] = cid
        cte = (stalwart_text(ph.get("content_transfer_encoding")) or "7bit").lower()
        if kind in ("Binary", "InlineBinary") and cte in STALWART_DECODES:
            data = bytes(body[kind])
            att["size"] = len(data)
            att["sha256"] = sha256(data)
        atts.append(att)
    e["attachments"] = atts
    e["attachment_count"] = len(atts)
    return e


# ---------------------------------------------------------------- mime4j

def m4j_headers(elem):
    """m4j_headers - the <header> of ELEM as an email.message.Message"""
    h = elem.find("header")
    fields = [f.text or "" for f in h.findall("field")] if h is not None else []
    text = "\n".join(x.strip("\r\n") for x in fields) + "\n\n"
    return email.parser.HeaderParser().parsestr(text)


def m4j_leaves(elem, hdr, parent_digest, out):
    """m4j_leaves - collect (headers, kind, file, parent_digest) for the leaves
    of the top-level message; an attached <message> is one leaf of kind 'message'"""
    mp = elem.find("multipart")
    if mp is not None:
        digest = hdr.get_content_type() == "multipart/digest"
        for bp in mp.findall("body-part"):
            m4j_leaves(bp, m4j_headers(bp), digest, out)
        return
    if elem.find("message") is not None:
        out.append((hdr, "message", None, parent_digest))
        return
    for kind in ("text-body", "binary-body"):
        b = elem.find(kind)
        if b is not None:
            out.append((hdr, kind, b.get("name"), parent_digest))
            return


def m4j_filename(hdr):
    """m4j_filename - a plain (unencoded ASCII) file name stated in HDR, or None"""
    raw = (hdr.get("Content-Disposition", "") or "") + (hdr.get("Content-Type", "") or "")
    if "*=" in raw or "*0" in raw or "=?" in raw:
        return None
    fn = hdr.get_filename()
    return fn if fn and fn.isascii() else None


def convert_mime4j(xml_path):
    """convert_mime4j - one mime4j X_decoded.xml with its decoded part files"""
    d = os.path.dirname(xml_path)
    root = ET.parse(xml_path).getroot()
    leaves = []
    m4j_leaves(root, m4j_headers(root), False, leaves)
    e = {}
    texts, htmls, atts = [], [], []
    for hdr, kind, name, in_digest in leaves:
        if kind == "message":
            atts.append({"content_type": "message/rfc822"})
            continue
        if in_digest and "Content-Type" not in hdr:
            continue  # digest default: message/rfc822 whose body mime4j dumps raw
        ctype = hdr.get_content_type()
        disp = (hdr.get("Content-Disposition") or "").split(";")[0].strip().lower()
        fn = m4j_filename(hdr)
        with open(os.path.join(d, name), "rb") as f:
            data = f.read()
        if kind == "text-body" and not fn and disp != "attachment":
            if ctype in ("text/plain", "text/html"):
                try:
                    body = data.decode(hdr.get_content_charset() or "us-ascii")
                except (LookupError, UnicodeDecodeError):
                    body = None
                (texts if ctype == "text/plain" else htmls).append(body)
            continue
        att = {}
        if "Content-Type" in hdr:
            att["content_type"] = ctype
        if fn:
            att["filename"] = fn
        if kind == "binary-body":
            att["size"] = len(data)
            att["sha256"] = sha256(data)
        atts.append(att)
    if len(texts) == 1 and texts[0] is not None:
        e["text"] = texts[0]
    if len(htmls) == 1 and htmls[0] is not None:
        e["html"] = htmls[0]
    if atts:
        e["attachments"] = atts
    return e


# ---------------------------------------------------------------- mimekit

def mimekit_summary(path):
    """mimekit_summary - the From/To/Subject/Date of each message of an mbox
    summary (MimeKit's MboxTests output: "From " line, headers, part tree)"""
    msgs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line.startswith("From "):
                msgs.append({})
                continue
            if not msgs or line.startswith(" ") or ":" not in line:
                continue
            name, value = line.split(":", 1)
            value = value.strip()
            e = msgs[-1]
            if name == "From":
                a = email.utils.getaddresses([value])
                e["from"] = {"name": a[0][0] or None, "address": a[0][1]}
            elif name == "To":
                e["to"] = [{"name": n or None, "address": ad}
                           for n, ad in email.utils.getaddresses([value])]
            elif name == "Subject":
                e["subject"] = value
            elif name == "Date":
                dt = rfc_date_utc(value)
                if dt:
                    e["date"] = dt
    return msgs


# ---------------------------------------------------------------- selection

def is_message_default(rel):
    """is_message_default - every file is a message"""
    return True


SETS = [
    # name, corpus dir, licence files, [(source subdir, dest subdir, filter)], golden
    ("mailcore2", "mailcore2", ["LICENSE"],
     [("unittest/data/parser/input", "", is_message_default)], True),
    ("stalwart", "stalwart-mail-parser",
     ["LICENSES/MIT.txt", "LICENSES/Apache-2.0.txt",
      ("resources/eml/legacy/COPYING", "COPYING.legacy")],
     [("resources/eml/rfc", "rfc", lambda r: r.endswith(".eml")),
      ("resources/eml/legacy", "legacy", lambda r: r.endswith(".eml"))], True),
    ("stalwart-dovecot", "stalwart-mail-parser",
     ["LICENSES/MIT.txt", ("resources/eml/malformed/COPYING", "COPYING")],
     [("resources/eml/malformed", "malformed", lambda r: r.endswith(".eml")),
      ("resources/eml/thirdparty", "thirdparty", lambda r: r.endswith(".eml"))], False),
    ("stalwart-maildir", "stalwart-mail-parser",
     ["LICENSES/MIT.txt", "LICENSES/Apache-2.0.txt"],
     [("resources/maildir", "", is_message_default)], False),
    ("mime4j", "mime4j", ["LICENSE", "NOTICE"],
     [("core/src/test/resources/testmsgs", "testmsgs", lambda r: r.endswith(".msg")),
      ("mbox/src/test/resources/test-1", "mbox", is_message_default)], True),
    ("mimekit", "mimekit", ["LICENSE"],
     [("UnitTests/TestData/messages", "messages", is_message_default),
      ("UnitTests/TestData/partial", "partial", is_message_default),
      ("UnitTests/TestData/tnef", "tnef", lambda r: r.endswith(".eml") and "/" not in r),
      ("UnitTests/TestData/mbox", "mbox",
       lambda r: r in ("issue1189.mbox.txt", "simple.mbox.txt", "unmunged.mbox.txt"))], True),
    ("enmime", "enmime", ["LICENSE"],
     [("testdata", "", lambda r: r.endswith(".raw")),
      ("dsn/testdata", "dsn", lambda r: r.endswith(".raw"))], False),
    ("flanker", "flanker", ["LICENSE"],
     [("tests/fixtures/messages", "",
       lambda r: r.endswith(".eml") or os.path.basename(r).startswith("email."))], False),
    ("nodemailer-mailparser", "nodemailer-mailparser", ["LICENSE"],
     [("test/fixtures", "", lambda r: r.endswith(".eml"))], False),
    ("python-test_email", "python-test_email", ["LICENSE.txt"],
     [("data", "", lambda r: r.startswith("msg_") and r.endswith(".txt"))], False),
    ("ruby-mail", "ruby-mail", ["MIT-LICENSE"],
     [("spec/fixtures/emails", "", lambda r: r.endswith(".eml")),
      ("spec/fixtures/attachments", "attachments", lambda r: r.endswith(".eml"))], False),
]


def copy_set(corpora, out, name, cdir, licences, sources):
    """copy_set - copy one set's licences and selected messages; returns
    {dest rel path under mail/: source path}"""
    sdir = os.path.join(out, name)
    for lic in licences:
        src, dst = lic if isinstance(lic, tuple) else (lic, os.path.basename(lic))
        copy_file(os.path.join(corpora, cdir, src), os.path.join(sdir, dst))
    copied = {}
    for sub, dsub, keep in sources:
        base = os.path.join(corpora, cdir, sub)
        for rel in walk_files(base):
            src = os.path.join(base, rel)
            corpus_rel = os.path.join(cdir, sub, rel)
            if not keep(rel):
                continue
            if os.path.getsize(src) > MAX_SIZE and corpus_rel not in BIG_OK:
                continue
            drel = os.path.join(dsub, rel) if dsub else rel
            copy_file(src, os.path.join(sdir, "mail", drel))
            copied[drel] = src
    return copied


def expect(out, name, rel, origin, messages):
    """expect - write the normalized expectation of mail/REL in set NAME"""
    write_json(os.path.join(out, name, "expected", rel + ".json"),
               {"origin": origin, "messages": messages})


def convert_set(corpora, out, name, copied):
    """convert_set - write the expectations of one golden set"""
    if name == "mailcore2":
        for rel in copied:
            src = os.path.join(corpora, "mailcore2/unittest/data/parser/output", rel)
            expect(out, name, rel, "mailcore2 unittest/data/parser/output/" + rel,
                   [convert_mailcore(src)])
    elif name == "stalwart":
        for rel, src in copied.items():
            js = src[:-len(".eml")] + ".json"
            expect(out, name, rel, "stalwart-mail-parser " +
                   os.path.relpath(js, os.path.join(corpora, "stalwart-mail-parser")),
                   [convert_stalwart(js)])
    elif name == "mime4j":
        for rel, src in copied.items():
            if rel.startswith("testmsgs/"):
                xml = src[:-len(".msg")] + "_decoded.xml"
                expect(out, name, rel, "mime4j " + os.path.relpath(
                    xml, os.path.join(corpora, "mime4j")) + " and its _decoded_* files",
                    [convert_mime4j(xml)])
        splits = sorted(r for r in copied if r.startswith("mbox/mbox.rlug-"))
        expect(out, name, "mbox/mbox.rlug",
               "mime4j mbox/src/test/resources/test-1: mbox.rlug split into mbox.rlug-N",
               [{"same_as": s} for s in splits])
    elif name == "mimekit":
        with open(os.path.join(corpora, "mimekit/expected-body-N.json"), encoding="utf-8") as f:
            cases = json.load(f)["cases"]
        for key, c in sorted(cases.items()):
            rel = "messages/" + os.path.basename(key)
            e = {}
            if c.get("text_body") is not None:
                e["text"] = c["text_body"]
            if c.get("html_body") is not None:
                e["html"] = c["html_body"]
            expect(out, name, rel, "mimekit expected-body-N.json " + key, [e])
        expect(out, name, "mbox/issue1189.mbox.txt",
               "mimekit UnitTests/TestData/mbox/issue1189-summary.txt",
               mimekit_summary(os.path.join(
                   corpora, "mimekit/UnitTests/TestData/mbox/issue1189-summary.txt")))


def main():
    """main - rebuild the fixtures"""
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", default="/work/shared/corpora")
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "fixtures", "corpora"))
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    total = 0
    for name, cdir, licences, sources, golden in SETS:
        shutil.rmtree(os.path.join(out, name), ignore_errors=True)
        copied = copy_set(args.corpora, out, name, cdir, licences, sources)
        if golden:
            convert_set(args.corpora, out, name, copied)
        size = sum(os.path.getsize(p) for p in copied.values())
        total += size
        print(f"{name}: {len(copied)} messages, {size / 1e6:.2f} MB")
    print(f"total: {total / 1e6:.2f} MB of messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())

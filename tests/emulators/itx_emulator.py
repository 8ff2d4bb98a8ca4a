#!/usr/bin/env python3
"""itx_emulator - a strict stand-in for the ITX (itxems) message API.

Serves POST /rest/itxems/message, POST /rest/itxems/message/search and
GET /rest/core/corefile/i/<id> the way shared/seeds/000 and VENDORS.md
section 1 describe them, rejecting anything the contract does not allow
(README.md lists each rule and whether it is FACT or GUESS). Tests drive it
through the unauthenticated /_emulator/ control endpoints: inject faults,
read what was stored, reset. Python 3.11 standard library only.
"""

import argparse
import collections
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 64 * 1024 * 1024  # request bodies above this get 413
FIRST_EACT_ID = 1001
FIRST_CASE_ID = 501
FIRST_FILE_ID = 388537

MESSAGE_PATH = "/rest/itxems/message"
SEARCH_PATH = "/rest/itxems/message/search"
COREFILE_PREFIX = "/rest/core/corefile/i/"
COREFILE_LINK = "rest/core/corefile/i/{}"  # what files[N] becomes in a stored body
CONTROL_PREFIX = "/_emulator/"

# Field kinds: "id" positive JSON integer, "count" integer >= 0, "page"
# integer >= 1, "direction" 1 or 2, "string", "bool".
MESSAGE_FIELDS = {
    "eactId": "id",
    "conversationEactId": "id",
    "replyToEactId": "id",
    "corpId": "id",
    "eeexId": "id",
    "contactEeexId": "id",
    "direction": "direction",
    "subject": "string",
    "body": "string",
    "isDraft": "bool",
    "userId": "id",
    "caseEactId": "id",
    "createCase": "bool",
    "caseStatusEmstId": "id",
    "caseCategoryCtnoId": "id",
    "caseQueueUcquId": "id",
}
MESSAGE_REQUIRED = ("eeexId", "direction", "subject", "body")

SEARCH_FIELDS = {
    "eactId": "id",
    "conversationEactId": "id",
    "caseEactId": "id",
    "corpId": "id",
    "eeexId": "id",
    "contactEeexId": "id",
    "direction": "direction",
    "isDraft": "bool",
    "userId": "id",
    "getConversations": "bool",
    "getContent": "bool",
    "limitFrom": "count",
    "limitTo": "page",
    "getTotalActivityCount": "bool",
}
# The search fields that filter by equality on a stored message.
SEARCH_FILTERS = ("eactId", "conversationEactId", "caseEactId", "corpId", "eeexId",
                  "contactEeexId", "direction", "isDraft", "userId")

FAULT_KEYS = {"status", "body", "retry_after", "delay_ms", "reset", "drop_response", "path",
              "match", "await"}
AWAIT_LIMIT_S = 10  # an "await" fault waits this long at most, then answers 500

TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
MEDIA_TYPE_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+/[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
BOUNDARY_RE = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
FILES_REF_RE = re.compile(r"files\[([0-9]+)\]")
INTEGER_RE = re.compile(r"-?[0-9]+")


class ApiError(Exception):
    """An answer other than success: STATUS with {"error": MESSAGE}; CLOSE
    ends the connection afterwards (the body was not read to its end)."""

    def __init__(self, status, message, close=False, headers=()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close
        self.headers = list(headers)


class Part:
    """One multipart/form-data part: its name, filename, Content-Type and bytes."""

    def __init__(self, name, filename, content_type, data):
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.data = data


# json_type - the JSON name of a decoded value's type, for error messages
def json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "non-integer number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


# check_field - raise 400 naming NAME unless VALUE is of KIND
def check_field(name, kind, value):
    if kind in ("string", "bool"):
        wanted = str if kind == "string" else bool
        if not isinstance(value, wanted):
            raise ApiError(400, f"{name} must be a JSON {'string' if kind == 'string' else 'boolean'}"
                                f" (got {json_type(value)})")
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, f"{name} must be a JSON integer (got {json_type(value)})")
    if kind == "direction" and value not in (1, 2):
        raise ApiError(400, f"{name} must be 1 (out, to customer) or 2 (in, from customer), got {value}")
    if kind == "id" and value < 1:
        raise ApiError(400, f"{name} must be a positive integer, got {value}")
    if kind == "count" and value < 0:
        raise ApiError(400, f"{name} must be >= 0, got {value}")
    if kind == "page" and value < 1:
        raise ApiError(400, f"{name} must be >= 1, got {value}")


# check_fields - unknown, missing and mistyped fields of OBJ against TABLE
def check_fields(obj, table, required=()):
    unknown = sorted(set(obj) - set(table))
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]}")
    for name in required:
        if name not in obj:
            raise ApiError(400, f"{name} is required")
    for name, kind in table.items():
        if name in obj:
            check_field(name, kind, obj[name])


# parse_json_object - decode RAW as one strict JSON object or raise 400 about WHAT
def parse_json_object(raw, what):
    def no_duplicates(pairs):
        obj = {}
        for key, value in pairs:
            if key in obj:
                raise ValueError(f"duplicate key {key}")
            obj[key] = value
        return obj

    def no_constants(name):
        raise ValueError(f"{name} is not JSON")

    try:
        obj = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates,
                         parse_constant=no_constants)
    except UnicodeDecodeError:
        raise ApiError(400, f"{what} is not UTF-8") from None
    except ValueError as e:
        raise ApiError(400, f"{what} is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ApiError(400, f"{what} must be a JSON object (got {json_type(obj)})")
    return obj


# parse_header_value - "type; a=b; c=\"d\"" -> ("type", {"a": "b", "c": "d"})
# (main value and parameter names lowercased); ValueError when malformed
def parse_header_value(value):
    main, _, rest = value.partition(";")
    main = main.strip().lower()
    if not main:
        raise ValueError("empty value")
    params = {}
    pos, end = 0, len(rest)
    while True:
        while pos < end and rest[pos] in " \t":
            pos += 1
        if pos == end:
            return main, params
        m = TOKEN_RE.match(rest, pos)
        if not m:
            raise ValueError(f"bad parameter at {rest[pos:]!r}")
        name = m.group().lower()
        pos = m.end()
        if not rest.startswith("=", pos):
            raise ValueError(f"parameter {name} has no value")
        pos += 1
        if rest.startswith('"', pos):
            chars = []
            pos += 1
            while pos < end and rest[pos] != '"':
                if rest[pos] == "\\" and pos + 1 < end:
                    pos += 1
                chars.append(rest[pos])
                pos += 1
            if pos == end:
                raise ValueError(f"parameter {name} has an unterminated quoted string")
            pos += 1
            val = "".join(chars)
        else:
            m = TOKEN_RE.match(rest, pos)
            if not m:
                raise ValueError(f"parameter {name} has a bad value")
            val = m.group()
            pos = m.end()
        if name in params:
            raise ValueError(f"parameter {name} given twice")
        params[name] = val
        while pos < end and rest[pos] in " \t":
            pos += 1
        if pos < end:
            if rest[pos] != ";":
                raise ValueError(f"expected ';' at {rest[pos:]!r}")
            pos += 1


# parse_part_headers - the CRLF-separated header block of part INDEX as a dict
def parse_part_headers(blob, index):
    headers = {}
    last = None
    for raw in blob.split(b"\r\n") if blob else []:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(400, f"multipart part {index} has a header that is not UTF-8") from None
        if line[:1] in (" ", "\t"):
            if last is None:
                raise ApiError(400, f"multipart part {index} starts with a continuation line")
            headers[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not TOKEN_RE.fullmatch(name):
            raise ApiError(400, f"multipart part {index} has a malformed header line {line!r}")
        last = name.lower()
        if last in headers:
            raise ApiError(400, f"multipart part {index} has two {name} headers")
        headers[last] = value.strip()
    return headers


# parse_part - one part's raw bytes (between delimiters) -> Part
def parse_part(raw, index):
    if raw.startswith(b"\r\n"):
        blob, data = b"", raw[2:]
    else:
        cut = raw.find(b"\r\n\r\n")
        if cut < 0:
            raise ApiError(400, f"multipart part {index} has no empty line (CRLF CRLF) after its headers")
        blob, data = raw[:cut], raw[cut + 4:]
    headers = parse_part_headers(blob, index)
    disposition = headers.get("content-disposition")
    if disposition is None:
        raise ApiError(400, f"multipart part {index} has no Content-Disposition header")
    try:
        kind, params = parse_header_value(disposition)
    except ValueError as e:
        raise ApiError(400, f"multipart part {index} has a bad Content-Disposition: {e}") from None
    if kind != "form-data":
        raise ApiError(400, f"multipart part {index} Content-Disposition must be form-data, got {kind}")
    if not params.get("name"):
        raise ApiError(400, f"multipart part {index} has no name in its Content-Disposition")
    encoding = headers.get("content-transfer-encoding", "binary").lower()
    if encoding not in ("7bit", "8bit", "binary"):
        raise ApiError(400, f"multipart part {index} uses Content-Transfer-Encoding {encoding};"
                            " send the bytes as they are")
    return Part(params["name"], params.get("filename"), headers.get("content-type"), data)


# parse_multipart - a multipart/form-data body (RFC 7578/2046, CRLF only) -> [Part]
def parse_multipart(content_type, body):
    if not content_type:
        raise ApiError(400, "Content-Type must be multipart/form-data (no Content-Type sent)")
    try:
        kind, params = parse_header_value(content_type)
    except ValueError as e:
        raise ApiError(400, f"bad Content-Type: {e}") from None
    if kind != "multipart/form-data":
        raise ApiError(400, f"Content-Type must be multipart/form-data, got {kind}")
    boundary = params.get("boundary")
    if not boundary:
        raise ApiError(400, "multipart/form-data without a boundary parameter")
    if not BOUNDARY_RE.fullmatch(boundary):
        raise ApiError(400, "the multipart boundary is not 1-70 RFC 2046 characters")
    delim = b"--" + boundary.encode("ascii")
    if body.startswith(delim):
        pos = 0
    else:
        pos = body.find(b"\r\n" + delim)
        if pos < 0:
            raise ApiError(400, "multipart body has no --boundary delimiter line")
        pos += 2
    parts = []
    while True:
        pos += len(delim)
        if body.startswith(b"--", pos):
            return parts
        while pos < len(body) and body[pos] in b" \t":
            pos += 1
        if not body.startswith(b"\r\n", pos):
            raise ApiError(400, "multipart delimiter line does not end in CRLF")
        start = pos + 2
        end = body.find(b"\r\n" + delim, start)
        if end < 0:
            raise ApiError(400, "multipart body has no closing delimiter (CRLF --boundary--)")
        parts.append(parse_part(body[start:end], len(parts)))
        pos = end + 2


# media_type - the lowercased type/subtype of a part's Content-Type or raise 400 about WHAT
def media_type(value, what):
    if value is None:
        raise ApiError(400, f"{what} has no Content-Type")
    try:
        kind, params = parse_header_value(value)
    except ValueError as e:
        raise ApiError(400, f"{what} has a bad Content-Type: {e}") from None
    if not MEDIA_TYPE_RE.fullmatch(kind):
        raise ApiError(400, f"{what} has a bad Content-Type {value!r}")
    return kind, params


# split_form - the message form: its data object and its files parts, checked
def split_form(parts):
    data_parts = [p for p in parts if p.name == "data"]
    files = [p for p in parts if p.name == "files"]
    for p in parts:
        if p.name not in ("data", "files"):
            raise ApiError(400, f"unexpected form field {p.name!r} (only data and files are accepted)")
    if len(data_parts) != 1:
        raise ApiError(400, f"exactly one data part is required, got {len(data_parts)}")
    data = data_parts[0]
    kind, params = media_type(data.content_type, "the data part")
    if kind != "application/json":
        raise ApiError(400, f"the data part must have Content-Type application/json, got {kind}")
    if params.get("charset", "utf-8").lower() != "utf-8":
        raise ApiError(400, "the data part must be UTF-8 JSON")
    for n, f in enumerate(files):
        if not f.filename:
            raise ApiError(400, f"files[{n}] has no filename")
        media_type(f.content_type, f"files[{n}]")
    return parse_json_object(data.data, "the data part"), files


# check_body_refs - every files[N] in BODY names a sent image/* part
def check_body_refs(body, files):
    for n in sorted({int(m) for m in FILES_REF_RE.findall(body)}):
        if n >= len(files):
            raise ApiError(400, f"body refers to files[{n}] but only {len(files)} files part(s)"
                                " were sent")
        kind, _ = media_type(files[n].content_type, f"files[{n}]")
        if not kind.startswith("image/"):
            raise ApiError(400, f"body embeds files[{n}] but its Content-Type is {kind};"
                                " embedded files must be image/*")


# response_view - the create answer: the fields the spec lists for a message
def response_view(msg):
    return {
        "eactId": msg["eactId"],
        "conversationEactId": msg["conversationEactId"],
        "caseEactId": msg["caseEactId"],
        "replyToEactId": msg.get("replyToEactId"),
        "eeexId": msg["eeexId"],
        "direction": msg["direction"],
        "subject": msg["subject"],
        "isDraft": msg.get("isDraft", False),
        "files": [{k: f[k] for k in ("id", "filename", "contentType", "size")} for f in msg["files"]],
    }


# search_view - a search hit: the create answer plus the optional ids sent, and the body if asked
def search_view(msg, content):
    view = response_view(msg)
    for key in ("corpId", "contactEeexId", "userId"):
        if key in msg:
            view[key] = msg[key]
    if content:
        view["body"] = msg["body"]
    return view


class State:
    """Everything the emulator remembers; every access holds `lock`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # in_flight changed
        self.in_flight = 0  # vendor requests read and not yet answered (kept by clear)
        # awaiting: per request held by an "await" fault, the most requests seen in
        # the server at once since it came in; updated at every arrival, so a peak
        # that is over before the waiter wakes up still counts
        self.awaiting = {}
        self.clear()

    # clear - forget messages, cases, files, requests and faults; restart the ids
    def clear(self):
        self.messages = []  # in creation order
        self.by_id = {}     # eactId -> message
        self.cases = {}     # caseEactId -> {"firstConversation": eactId, ...}
        self.files = {}     # corefile id -> (Content-Type, bytes)
        self.requests = []
        self.faults = collections.deque()
        self.next_eact = FIRST_EACT_ID
        self.next_case = FIRST_CASE_ID
        self.next_file = FIRST_FILE_ID

    # take_fault - remove and return the first fault that applies to PATH
    # and BODY (bytes), or None
    def take_fault(self, path, body):
        with self.lock:
            for fault in self.faults:
                if path.startswith(fault.get("path", "/")) and \
                        fault.get("match", "").encode("utf-8") in body:
                    self.faults.remove(fault)
                    return fault
        return None

    # conversation - the conversationEactId for a new message in CASE_ID, or raise
    def conversation(self, data, case_id):
        reply_id = data.get("replyToEactId")
        conv_id = data.get("conversationEactId")
        if case_id is None:
            if reply_id is not None or conv_id is not None:
                raise ApiError(400, "replyToEactId/conversationEactId need caseEactId;"
                                    " a new case has no messages yet")
            return None
        conv = self.cases[case_id]["firstConversation"]
        if reply_id is not None:
            target = self.by_id.get(reply_id)
            if target is None:
                raise ApiError(404, f"replyToEactId {reply_id} does not exist")
            if target["caseEactId"] != case_id:
                raise ApiError(400, f"replyToEactId {reply_id} belongs to case"
                                    f" {target['caseEactId']}, not {case_id}")
            conv = target["conversationEactId"]
        if conv_id is not None:
            start = self.by_id.get(conv_id)
            if start is None:
                raise ApiError(404, f"conversationEactId {conv_id} does not exist")
            if start["caseEactId"] != case_id or start["conversationEactId"] != conv_id:
                raise ApiError(400, f"conversationEactId {conv_id} is not a conversation"
                                    f" of case {case_id}")
            if reply_id is not None and conv != conv_id:
                raise ApiError(400, f"replyToEactId {reply_id} is in conversation {conv},"
                                    f" not {conv_id}")
            conv = conv_id
        return conv

    # create_message - store a checked message and its files; returns the stored record
    def create_message(self, data, files):
        if "eactId" in data:
            raise ApiError(400, "eactId (updating a draft) is not supported by this emulator")
        create = data.get("createCase", False)
        case_id = data.get("caseEactId")
        if create and case_id is not None:
            raise ApiError(400, "give either createCase: true or caseEactId, not both")
        if not create and case_id is None:
            raise ApiError(400, "caseEactId is required unless createCase is true")
        check_body_refs(data["body"], files)
        with self.lock:
            if case_id is not None and case_id not in self.cases:
                raise ApiError(404, f"caseEactId {case_id} does not exist")
            conv = self.conversation(data, case_id)
            eact = self.next_eact
            self.next_eact += 1
            if case_id is None:
                case_id = self.next_case
                self.next_case += 1
                self.cases[case_id] = {"firstConversation": eact}
                conv = eact
            stored = []
            for f in files:
                self.files[self.next_file] = (f.content_type, f.data)
                stored.append({"id": self.next_file, "filename": f.filename,
                               "contentType": f.content_type, "size": len(f.data),
                               "sha256": hashlib.sha256(f.data).hexdigest()})
                self.next_file += 1
            msg = dict(data)
            msg.update(eactId=eact, conversationEactId=conv, caseEactId=case_id, files=stored,
                       body=FILES_REF_RE.sub(
                           lambda m: COREFILE_LINK.format(stored[int(m.group(1))]["id"]),
                           data["body"]))
            self.messages.append(msg)
            self.by_id[eact] = msg
            return msg

    # search - (matching messages as views for this page, total matched)
    def search(self, query):
        with self.lock:
            hits = [m for m in self.messages
                    if all(query[k] == m.get(k, False if k == "isDraft" else None)
                           for k in SEARCH_FILTERS if k in query)
                    and (not query.get("getConversations")
                         or m["eactId"] == m["conversationEactId"])]
            first = query.get("limitFrom", 0)
            page = hits[first:first + query["limitTo"]] if "limitTo" in query else hits[first:]
            return [search_view(m, query.get("getContent", False)) for m in page], len(hits)


# parse_faults - the checked list of faults in a POST /_emulator/faults body
def parse_faults(body):
    obj = parse_json_object(body, "the request body")
    if set(obj) != {"faults"} or not isinstance(obj["faults"], list):
        raise ApiError(400, 'the body must be {"faults": [...]}')
    for f in obj["faults"]:
        if not isinstance(f, dict):
            raise ApiError(400, "each fault must be a JSON object")
        unknown = sorted(set(f) - FAULT_KEYS)
        if unknown:
            raise ApiError(400, f"unknown fault key {unknown[0]}")
        kinds = [k for k in ("status", "reset", "drop_response") if k in f]
        if len(kinds) > 1 or not (kinds or "delay_ms" in f or "await" in f):
            raise ApiError(400, "a fault is one of status, reset or drop_response, optionally"
                                " with delay_ms and await (or those alone)")
        if not isinstance(f.get("match", ""), str):
            raise ApiError(400, "match must be a string")
        wait = f.get("await", 2)
        if not isinstance(wait, int) or isinstance(wait, bool) or not 2 <= wait <= 64:
            raise ApiError(400, "await must be an integer 2-64")
        status = f.get("status", 200)
        if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
            raise ApiError(400, "status must be an integer 200-599")
        if ("body" in f or "retry_after" in f) and "status" not in f:
            raise ApiError(400, "body and retry_after go with status")
        if not isinstance(f.get("body", ""), str):
            raise ApiError(400, "body must be a string")
        if isinstance(f.get("retry_after"), bool) or not isinstance(f.get("retry_after", ""), (str, int)):
            raise ApiError(400, "retry_after must be a string or an integer")
        delay = f.get("delay_ms", 0)
        if not isinstance(delay, int) or isinstance(delay, bool) or delay < 0:
            raise ApiError(400, "delay_ms must be an integer >= 0")
        if any(f.get(k, True) is not True for k in ("reset", "drop_response")):
            raise ApiError(400, "reset and drop_response can only be true")
        if not isinstance(f.get("path", "/"), str) or not f.get("path", "/").startswith("/"):
            raise ApiError(400, "path must be a string starting with /")
    return obj["faults"]


class Handler(BaseHTTPRequestHandler):
    """One connection; requests on it are served in turn (keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "itx-emulator/1"

    # setup - wrap the accepted socket in TLS here, in the connection's own thread
    def setup(self):
        if self.server.tls is not None:
            self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    # finish - also close the TLS socket, which the server no longer holds
    def finish(self):
        super().finish()
        if self.server.tls is not None:
            self.request.close()

    # handle_expect_100 - no "100 Continue" for a body we will refuse as too large
    def handle_expect_100(self):
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            return True
        return super().handle_expect_100()

    # log_request - replaced by log_outcome, which also covers unanswered requests
    def log_request(self, code="-", size="-"):
        pass

    # log_message - the base class's own errors (bad request lines), unless --quiet
    def log_message(self, format, *args):
        if not self.server.quiet:
            sys.stderr.write("itx-emulator: " + (format % args) + "\n")
            sys.stderr.flush()

    # log_outcome - the one line per request: method, path, status ("-" = no answer)
    def log_outcome(self, path, status):
        if not self.server.quiet:
            sys.stderr.write(f"{self.command} {path} {'-' if status is None else status}\n")
            sys.stderr.flush()

    # do_GET - every method goes through dispatch (wrong ones get 405 there)
    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    # dispatch - read the body, then serve a control or a vendor request
    def dispatch(self):
        url = urlsplit(self.path)
        try:
            body = self.read_body()
        except ApiError as e:
            if url.path.startswith(CONTROL_PREFIX):
                self.log_outcome(url.path, e.status)
            else:
                self.record(url.path, e.status)
            self.send_error_json(e)
            return
        if url.path.startswith(CONTROL_PREFIX):
            try:
                status, obj = self.control(url.path, body)
                self.send_json(status, obj)
            except ApiError as e:
                status = e.status
                self.send_error_json(e)
            self.log_outcome(url.path, status)
        else:
            self.vendor(url, body)

    # read_body - exactly Content-Length bytes, or a chunked body; capped at MAX_BODY
    def read_body(self):
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings:
            if lengths:
                raise ApiError(400, "both Content-Length and Transfer-Encoding sent", close=True)
            if [e.strip().lower() for e in encodings] != ["chunked"]:
                raise ApiError(400, "only Transfer-Encoding: chunked is supported", close=True)
            return self.read_chunked()
        if not lengths:
            return b""  # RFC 9112 6.3: neither header means no body
        if len(set(lengths)) != 1 or not re.fullmatch(r"[0-9]+", lengths[0].strip()):
            raise ApiError(400, "bad Content-Length", close=True)
        length = int(lengths[0])
        if length > MAX_BODY:
            raise ApiError(413, f"request body over {MAX_BODY} bytes", close=True)
        data = self.rfile.read(length)
        if len(data) != length:
            raise ApiError(400, "connection closed inside the request body", close=True)
        return data

    # read_chunked - a chunked request body and its trailer
    def read_chunked(self):
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            size = line[:-2].split(b";", 1)[0].strip()
            if not line.endswith(b"\r\n") or not re.fullmatch(rb"[0-9A-Fa-f]+", size):
                raise ApiError(400, "bad chunk size line", close=True)
            size = int(size, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise ApiError(413, f"request body over {MAX_BODY} bytes", close=True)
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.read(2) != b"\r\n":
                raise ApiError(400, "chunk shorter than its size or not followed by CRLF", close=True)
            chunks.append(chunk)
        while True:
            line = self.rfile.readline(8192)
            if line == b"\r\n":
                return b"".join(chunks)
            if not line.endswith(b"\r\n"):
                raise ApiError(400, "bad chunked trailer", close=True)

    # send_bytes - one complete answer, always with Content-Length
    def send_bytes(self, status, body, content_type, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    # send_json - OBJ as a JSON answer
    def send_json(self, status, obj, headers=()):
        body = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.send_bytes(status, body, "application/json; charset=utf-8", headers)

    # send_error_json - an ApiError as {"error": "..."}
    def send_error_json(self, err):
        if err.close:
            self.close_connection = True
        self.send_json(err.status, {"error": err.message}, err.headers)

    # abort - close the connection without an answer (shutdown + close)
    def abort(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.connection.close()

    # record - remember a vendor request's outcome for /_emulator/requests;
    # called before the answer is sent, so a client that has it sees the record
    def record(self, path, status):
        with self.server.state.lock:
            self.server.state.requests.append({"method": self.command, "path": path,
                                               "status": status})
        self.log_outcome(path, status)

    # vendor - count the request in flight while it is served
    def vendor(self, url, body):
        state = self.server.state
        with state.changed:
            state.in_flight += 1
            for key in state.awaiting:
                state.awaiting[key] = max(state.awaiting[key], state.in_flight)
            state.changed.notify_all()
        try:
            self.serve_vendor(url, body)
        finally:
            with state.changed:
                state.in_flight -= 1
                state.changed.notify_all()

    # await_others - true once N vendor requests (this one included) are in
    # the server at the same time; false after AWAIT_LIMIT_S
    def await_others(self, n):
        state = self.server.state
        key = object()
        with state.changed:
            state.awaiting[key] = state.in_flight
            try:
                return state.changed.wait_for(lambda: state.awaiting[key] >= n, AWAIT_LIMIT_S)
            finally:
                del state.awaiting[key]

    # serve_vendor - apply the next fault, then serve a vendor endpoint
    def serve_vendor(self, url, body):
        fault = self.server.state.take_fault(url.path, body) or {}
        if "await" in fault and not self.await_others(fault["await"]):
            self.record(url.path, 500)
            self.send_json(500, {"error": f"await: fewer than {fault['await']} requests "
                                          "came in at the same time"})
            return
        if fault.get("delay_ms"):
            time.sleep(fault["delay_ms"] / 1000)
        if "status" in fault:
            text = fault.get("body", json.dumps({"error": f"injected fault {fault['status']}"}))
            try:
                json.loads(text)
                ctype = "application/json; charset=utf-8"
            except ValueError:
                ctype = "text/plain; charset=utf-8"
            headers = [("Retry-After", str(fault["retry_after"]))] if "retry_after" in fault else []
            self.record(url.path, fault["status"])
            self.send_bytes(fault["status"], text.encode("utf-8"), ctype, headers)
            return
        if fault.get("reset"):
            self.record(url.path, None)
            self.abort()
            return
        try:
            answer = self.route(url, body)
        except ApiError as e:
            answer = e
        if fault.get("drop_response"):
            self.record(url.path, None)
            self.abort()
            return
        if isinstance(answer, ApiError):
            self.record(url.path, answer.status)
            self.send_error_json(answer)
        else:
            status, payload, ctype, headers = answer
            self.record(url.path, status)
            self.send_bytes(status, payload, ctype, headers)

    # check_auth - tokenv2, rcntrl and ccntrl as headers or query parameters, or 401
    def check_auth(self, query):
        config = self.server.config
        params = parse_qs(query, keep_blank_values=True)
        got = {}
        for name in ("tokenv2", "rcntrl", "ccntrl"):
            values = {v.strip() for v in (self.headers.get_all(name) or []) + params.get(name, [])}
            if not values:
                raise ApiError(401, f"{name} is missing (send it as a header or query parameter)")
            if len(values) > 1:
                raise ApiError(401, f"{name} is given more than once with different values")
            got[name] = values.pop()
        if not got["tokenv2"]:
            raise ApiError(401, "tokenv2 is empty")
        for name in ("rcntrl", "ccntrl"):
            if not INTEGER_RE.fullmatch(got[name]):
                raise ApiError(401, f"{name} must be an integer")
        if got["tokenv2"] != config["tokenv2"]:
            raise ApiError(401, "tokenv2 is not valid")
        for name in ("rcntrl", "ccntrl"):
            if int(got[name]) != config[name]:
                raise ApiError(401, f"{name} does not match the token")

    # route - (status, body bytes, Content-Type, headers) of a vendor request, or raise
    def route(self, url, body):
        self.check_auth(url.query)
        path = url.path
        if path in (MESSAGE_PATH, SEARCH_PATH):
            if self.command != "POST":
                raise ApiError(405, f"{path} takes POST", headers=[("Allow", "POST")])
            if path == MESSAGE_PATH:
                data, files = split_form(parse_multipart(self.headers.get("Content-Type"), body))
                check_fields(data, MESSAGE_FIELDS, MESSAGE_REQUIRED)
                msg = self.server.state.create_message(data, files)
                return self.json_answer(200, response_view(msg))
            return self.search(body)
        if path.startswith(COREFILE_PREFIX):
            if self.command != "GET":
                raise ApiError(405, "corefiles take GET", headers=[("Allow", "GET")])
            ident = path[len(COREFILE_PREFIX):]
            with self.server.state.lock:
                stored = self.server.state.files.get(int(ident)) if ident.isdigit() else None
            if stored is None:
                raise ApiError(404, f"no corefile {ident}")
            return 200, stored[1], stored[0], []
        raise ApiError(404, f"no endpoint {path}")

    # json_answer - the route() tuple for a JSON answer
    @staticmethod
    def json_answer(status, obj, headers=()):
        return (status, json.dumps(obj, ensure_ascii=False).encode("utf-8"),
                "application/json; charset=utf-8", list(headers))

    # search - POST /rest/itxems/message/search
    def search(self, body):
        try:
            kind, _ = parse_header_value(self.headers.get("Content-Type") or "")
        except ValueError:
            kind = None
        if kind != "application/json":
            raise ApiError(400, "search takes a JSON body with Content-Type application/json")
        query = parse_json_object(body, "the search body")
        check_fields(query, SEARCH_FIELDS)
        hits, total = self.server.state.search(query)
        headers = [("ITX-Total-Found", str(total))] if query.get("getTotalActivityCount") else []
        return self.json_answer(200, hits, headers)

    # control - the /_emulator/ endpoints: (status, JSON object) or raise
    def control(self, path, body):
        state = self.server.state
        routes = {"faults": "POST", "messages": "GET", "requests": "GET", "reset": "POST"}
        name = path[len(CONTROL_PREFIX):]
        if name not in routes:
            raise ApiError(404, f"no control endpoint {path}")
        if self.command != routes[name]:
            raise ApiError(405, f"{path} takes {routes[name]}", headers=[("Allow", routes[name])])
        if name == "faults":
            faults = parse_faults(body)
            with state.lock:
                state.faults.extend(faults)
                return 200, {"queued": len(state.faults)}
        with state.lock:
            if name == "messages":
                return 200, list(state.messages)
            if name == "requests":
                return 200, list(state.requests)
            state.clear()
            return 200, {"reset": True}


class Server(ThreadingHTTPServer):
    """The listening socket, the configuration and the shared State."""

    daemon_threads = True

    def __init__(self, address, config, tls, quiet):
        self.config = config  # {"tokenv2": str, "rcntrl": int, "ccntrl": int}
        self.tls = tls        # ssl.SSLContext or None
        self.quiet = quiet
        self.state = State()
        super().__init__(address, Handler)

    # handle_error - one line instead of a traceback (clients that vanish, TLS failures)
    def handle_error(self, request, client_address):
        if not self.quiet:
            sys.stderr.write(f"itx-emulator: connection error: {sys.exc_info()[1]!r}\n")
            sys.stderr.flush()


# write_port_file - PORT into PATH atomically (temp file + rename)
def write_port_file(path, port):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


# main - parse arguments, listen, serve until SIGTERM or SIGINT
def main(argv=None):
    ap = argparse.ArgumentParser(description="Strict ITX (itxems) API emulator for tests.")
    ap.add_argument("--port", type=int, default=0, help="port, 0 = any free port")
    ap.add_argument("--port-file", help="write the chosen port here once listening")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--tokenv2", default="test-token")
    ap.add_argument("--rcntrl", type=int, default=11)
    ap.add_argument("--ccntrl", type=int, default=22)
    ap.add_argument("--tls-cert", help="PEM certificate: serve HTTPS")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    ap.add_argument("--quiet", action="store_true", help="no per-request log on stderr")
    args = ap.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    config = {"tokenv2": args.tokenv2, "rcntrl": args.rcntrl, "ccntrl": args.ccntrl}
    server = Server((args.host, args.port), config, tls, args.quiet)
    port = server.server_address[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    print(f"itx-emulator listening on {'https' if tls else 'http'}://{args.host}:{port}", flush=True)

    # stop - SIGTERM ends serve_forever like Ctrl-C does
    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

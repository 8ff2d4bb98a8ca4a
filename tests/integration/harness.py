"""harness - helpers for end-to-end tests of the mailbridge binary.

Emulator runs tests/emulators/itx_emulator.py on a free port; Workdir is a
temporary directory with config, Maildir and mbox helpers; run_mailbridge
runs the binary named by $MAILBRIDGE (set by ctest); make_mail builds RFC 5322
test mail. Python 3.11 standard library only. A test file is a unittest module
that ends with `if __name__ == "__main__": harness.main()`.
"""

import email.policy
import email.utils
import http.client
import itertools
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from email.message import EmailMessage
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parents[2]
ITX_EMULATOR = SOURCE_DIR / "tests" / "emulators" / "itx_emulator.py"


class Response:
    """An HTTP answer: status, headers (an http.client.HTTPMessage), body bytes."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    # json - the body decoded as JSON
    def json(self):
        return json.loads(self.body)


# encode_multipart - (Content-Type, body) of a multipart/form-data request with
# a JSON `data` part and one `files` part per (filename, content_type, bytes)
def encode_multipart(data, files=()):
    boundary = uuid.uuid4().hex
    out = [f'--{boundary}\r\nContent-Disposition: form-data; name="data"\r\n'
           f"Content-Type: application/json\r\n\r\n".encode(),
           json.dumps(data).encode()]
    for filename, ctype, content in files:
        quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
        out += [f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="{quoted}"\r\nContent-Type: {ctype}\r\n\r\n'.encode(), content]
    out.append(f"\r\n--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(out)


class Emulator:
    """The ITX emulator as a context manager. Inside `with Emulator() as itx:`
    it listens on itx.url; stderr (one line per request) goes to itx.log_path,
    which is printed when the block raises and removed otherwise."""

    def __init__(self, tokenv2="test-token", rcntrl=11, ccntrl=22, tls_cert=None, tls_key=None,
                 start_timeout=10):
        self.tokenv2, self.rcntrl, self.ccntrl = tokenv2, rcntrl, ccntrl
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.start_timeout = start_timeout
        self.proc = None
        self.dir = None
        self.port = None
        self.url = None

    def __enter__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="itx-emulator-"))
        self.log_path = self.dir / "emulator.log"
        port_file = self.dir / "port"
        cmd = [sys.executable, str(ITX_EMULATOR), "--port", "0", "--port-file", str(port_file),
               "--tokenv2", self.tokenv2, "--rcntrl", str(self.rcntrl), "--ccntrl", str(self.ccntrl)]
        if self.tls_cert:
            cmd += ["--tls-cert", str(self.tls_cert), "--tls-key", str(self.tls_key)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"itx emulator did not start:\n{self.log()}")
            time.sleep(0.02)
        self.port = int(port_file.read_text())
        self.url = f"{'https' if self.tls_cert else 'http'}://127.0.0.1:{self.port}"
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop()
        if exc_type is not None:
            sys.stderr.write(f"--- itx emulator log ({self.log_path}) ---\n{self.log()}\n")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False

    # stop - SIGTERM (SIGKILL after 5 s); returns the exit code
    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    # log - what the emulator wrote so far
    def log(self):
        return self.log_path.read_text(errors="replace")

    # auth_headers - the three ITX credential headers
    def auth_headers(self):
        return {"tokenv2": self.tokenv2, "rcntrl": str(self.rcntrl), "ccntrl": str(self.ccntrl)}

    # request - one request on a new connection; AUTH adds the credential headers
    def request(self, method, path, body=None, headers=None, auth=True, timeout=30):
        if self.tls_cert:
            ctx = ssl.create_default_context(cafile=str(self.tls_cert))
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        all_headers = dict(self.auth_headers() if auth else {}, **(headers or {}))
        try:
            conn.request(method, path, body=body, headers=all_headers)
            resp = conn.getresponse()
            return Response(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    # _control - a /_emulator/ call that must succeed; returns its JSON
    def _control(self, method, name, obj=None):
        body = None if obj is None else json.dumps(obj).encode()
        resp = self.request(method, "/_emulator/" + name, body=body, auth=False,
                            headers={"Content-Type": "application/json"} if body else None)
        if resp.status != 200:
            raise RuntimeError(f"/_emulator/{name}: {resp.status} {resp.body!r}")
        return resp.json()

    # messages - every stored message, in creation order
    def messages(self):
        return self._control("GET", "messages")

    # requests - [{method, path, status}] of every vendor request, in order
    def requests(self):
        return self._control("GET", "requests")

    # faults - queue fault objects (see the emulator's README)
    def faults(self, faults):
        return self._control("POST", "faults", {"faults": list(faults)})

    # reset - forget messages, cases, requests and faults; ids start over
    def reset(self):
        return self._control("POST", "reset")

    # post_message - POST /rest/itxems/message as ITX would receive it, e.g.
    # an agent's reply (direction 1); FILES are (filename, content_type, bytes)
    def post_message(self, data, files=()):
        ctype, body = encode_multipart(data, files)
        return self.request("POST", "/rest/itxems/message", body=body,
                            headers={"Content-Type": ctype})

    # search - POST /rest/itxems/message/search with FILTERS
    def search(self, filters):
        return self.request("POST", "/rest/itxems/message/search",
                            body=json.dumps(filters).encode(),
                            headers={"Content-Type": "application/json"})


class Maildir:
    """A Maildir folder (cur/new/tmp) at `path`."""

    def __init__(self, path):
        self.path = Path(path)
        self._seq = itertools.count(1)
        for sub in ("cur", "new", "tmp"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    # add - deliver RAW the Maildir way (write in tmp/, rename); no FLAGS puts
    # it in new/, flags (e.g. "S") put it in cur/ as NAME:2,FLAGS; returns the path
    def add(self, raw, flags=""):
        name = f"{time.time_ns()}.M{next(self._seq)}P{os.getpid()}.harness"
        tmp = self.path / "tmp" / name
        tmp.write_bytes(raw)
        final = (self.path / "cur" / f"{name}:2,{''.join(sorted(flags))}" if flags
                 else self.path / "new" / name)
        os.rename(tmp, final)
        return final

    # files - the file names in SUB ("new" or "cur"), sorted
    def files(self, sub):
        return sorted(p.name for p in (self.path / sub).iterdir())


class Workdir:
    """A temporary directory for one test; removed on a clean exit, kept (and
    its path printed) when the block raises."""

    def __enter__(self):
        self.path = Path(tempfile.mkdtemp(prefix="mailbridge-it-"))
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            sys.stderr.write(f"--- kept work directory {self.path} ---\n")
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return False

    # write_config - TEXT into NAME; returns its path
    def write_config(self, text, name="mailbridge.conf"):
        path = self.path / name
        path.write_text(text)
        return path

    # maildir - a Maildir folder NAME inside the work directory
    def maildir(self, name):
        return Maildir(self.path / name)

    # mbox - an mboxrd file NAME holding MESSAGES (bytes; CRLF becomes LF and
    # ">*From " lines get one more ">"); returns its path
    def mbox(self, name, messages):
        out = []
        for raw in messages:
            out.append(b"From MAILER-DAEMON Sat Jan  1 00:00:00 2000\n")
            for line in raw.replace(b"\r\n", b"\n").splitlines(keepends=True):
                out.append(b">" + line if line.lstrip(b">").startswith(b"From ") else line)
            if not out[-1].endswith(b"\n"):
                out.append(b"\n")
            out.append(b"\n")
        path = self.path / name
        path.write_bytes(b"".join(out))
        return path


# run_mailbridge - run $MAILBRIDGE with ARGS; INPUT (bytes or str) goes to
# stdin, ENV adds to the environment; stdout/stderr come back as text
# (undecodable bytes replaced). Raises if $MAILBRIDGE is unset or missing.
def run_mailbridge(args, input=None, env=None, timeout=60):
    binary = os.environ.get("MAILBRIDGE")
    if not binary or not os.access(binary, os.X_OK):
        raise RuntimeError(f"MAILBRIDGE={binary!r} is not an executable (run through ctest)")
    if isinstance(input, str):
        input = input.encode()
    proc = subprocess.run([binary, *map(str, args)], input=input, capture_output=True,
                          env=dict(os.environ, **(env or {})), timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode,
                                       proc.stdout.decode("utf-8", "replace"),
                                       proc.stderr.decode("utf-8", "replace"))


# make_mail - RFC 5322 bytes (LF line ends; CRLF when CRLF is true). TEXT
# and/or HTML make the body (both: multipart/alternative). ATTACHMENTS are
# (filename, content_type, bytes, content_id or None): with a content id the
# part is an inline image in multipart/related beside the HTML (refer to it
# as cid:ID), without one an attachment in multipart/mixed.
def make_mail(subject="Test message", from_="Customer <customer@example.com>",
              to="support@example.com", message_id=None, in_reply_to=None, references=None,
              text=None, html=None, attachments=(), date=None, headers=None, crlf=False):
    msg = EmailMessage()
    msg["From"] = from_
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = date or email.utils.formatdate(usegmt=True)
    msg["Message-ID"] = message_id or email.utils.make_msgid(domain="example.com")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references if isinstance(references, str) else " ".join(references)
    for name, value in (headers or {}).items():
        msg[name] = value
    if text is None and html is None:
        text = "Hello,\n\nthis is a test message.\n"
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    else:
        msg.set_content(html, subtype="html")
    root = msg.get_payload()[-1] if msg.is_multipart() else msg
    for filename, ctype, data, cid in attachments:
        if cid is not None:
            maintype, subtype = ctype.split("/", 1)
            root.add_related(data, maintype, subtype, filename=filename, disposition="inline",
                             cid=cid if cid.startswith("<") else f"<{cid}>")
    for filename, ctype, data, cid in attachments:
        if cid is None:
            maintype, subtype = ctype.split("/", 1)
            msg.add_attachment(data, maintype, subtype, filename=filename)
    policy = email.policy.SMTP if crlf else email.policy.default
    return msg.as_bytes(policy=policy)


# main - run the calling test module with unittest (exit status 1 on failure)
def main():
    unittest.main(module="__main__", verbosity=2)

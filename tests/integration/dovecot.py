"""dovecot - a private Dovecot IMAP/POP3 server for the mailbridge tests.

`with Dovecot() as dc:` runs Dovecot 2.3 (`dovecot -F`, never the system one)
from a config generated in one temporary directory - config, sockets, state,
log, Maildirs and a throw-away TLS CA - on free loopback high ports, and
removes it all on a clean exit. The end-to-end tests use it as a library; the
C tests of the IMAP and POP3 clients use the command line at the bottom
(`serve`, `append`, `messages`, `reset-uidvalidity`). Python 3.11 standard
library only; Linux (/proc is used to find the server's processes).

POP3 UIDLs are Dovecot's %08Xu%08Xv: UID then UIDVALIDITY, 8 lower-case hex
digits each. `serve` state files also carry "log_file" (the server log).
"""

import argparse
import contextlib
import grp
import hashlib
import imaplib
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_USERS = {"support": "secret", "sales": "secret2"}
EXIT_SKIP = 77  # ctest's skip code, returned by the CLI when Dovecot is missing
SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")  # not on a normal user's PATH
USERNAME = re.compile(r"[A-Za-z0-9._@-]+")  # Dovecot's default auth_username_chars

# Dovecot 2.3's own post-login CAPABILITY list. Setting imap_capability replaces
# the whole list, so hiding IDLE or MOVE means naming all the others; the
# self-test compares this against a default server, so a Dovecot upgrade that
# changes the list fails there instead of silently here.
CAPABILITIES = ("IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY "
                "THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL "
                "CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 "
                "CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS "
                "BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE "
                "LITERAL+ NOTIFY").split()

# openssl(1) settings for the test CAs and the server certificate; strict
# enough for GnuTLS (libetpan, libcurl) as well as OpenSSL (Python).
OPENSSL_CNF = """\
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


class DovecotUnavailable(RuntimeError):
    """Dovecot is not installed (the CLI exits 77 on this)."""


# _which - absolute path of program NAME on $PATH or in the sbin directories, or None
def _which(name):
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS]))


# _quote - NAME as an IMAP quoted string (imaplib sends arguments verbatim)
def _quote(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# _check - raise unless an imaplib answer TYP is OK
def _check(typ, data, what):
    if typ != "OK":
        raise RuntimeError(f"IMAP {what}: {typ} {data!r}")
    return data


class Dovecot:
    """A private Dovecot on 127.0.0.1 (see the module doc string).

    USERS maps user name to password (default: support/secret, sales/secret2).
    IDLE and MOVE false leave that capability out of CAPABILITY (the command
    itself still works: Dovecot cannot switch it off). Attributes once
    started: host, imap_port (STARTTLS offered; LOGIN, AUTHENTICATE PLAIN and
    XOAUTH2), imaps_port, pop3_port (STLS offered), pop3s_port, ca_file (the CA
    that signed the server certificate for localhost and 127.0.0.1),
    bad_ca_file (an unrelated CA), dir (the temporary directory).

    Test-friendly choices: a failed login is answered after ~0.5 s instead of
    2 s and without Dovecot's growing per-IP penalty; mail processes run as
    `nobody` when we are root (Dovecot refuses root for mail, and the
    `dovecot` user must not own mail), else everything runs as the caller.
    """

    host = HOST

    def __init__(self, users=None, idle=True, move=True, start_timeout=10):
        self.dovecot_bin = os.environ.get("MB_DOVECOT") or _which("dovecot")
        self.doveadm_bin = _which("doveadm")
        if not (self.dovecot_bin and os.access(self.dovecot_bin, os.X_OK) and self.doveadm_bin):
            raise DovecotUnavailable(
                f"Dovecot is not installed (dovecot={self.dovecot_bin!r}, "
                f"doveadm={self.doveadm_bin!r}); contrib/install-deps --test installs it")
        self.users = dict(DEFAULT_USERS if users is None else users)
        for user, password in self.users.items():
            if not USERNAME.fullmatch(user) or not password or re.search(r"[:\r\n]", password):
                raise ValueError(f"user {user!r}: names are [A-Za-z0-9._@-]+, passwords "
                                 "non-empty without ':' or line breaks")
        self.idle, self.move, self.start_timeout = idle, move, start_timeout
        self.dir = None
        self.proc = None  # the dovecot master, while running
        self.imap_port = self.imaps_port = self.pop3_port = self.pop3s_port = None
        self.ca_file = self.bad_ca_file = None
        self.instance = "mb" + secrets.token_hex(4)  # names our processes: dovecot-<instance>/...
        self._tokens = {user: secrets.token_urlsafe(24) for user in self.users}
        self._attached = False  # True for a server another process owns (attach)

    # -- life cycle ---------------------------------------------------------

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.stop()
            sys.stderr.write(f"--- dovecot log (kept {self.dir}) ---\n{self.log()}\n")
        return False

    # open - create the directory, CA, certificates, users and config, then
    # start; a port taken between choosing and binding it gets new ports
    # (on failure the directory goes too: the error carries the log)
    def open(self):
        self.dir = Path(tempfile.mkdtemp(prefix="mbdc-", dir="/tmp"))  # short: socket paths
        try:
            self._setup_files()
            for attempt in range(3):
                self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port = _free_ports(4)
                self._write_config()
                try:
                    self.start()
                    return
                except RuntimeError:
                    self.stop()
                    if attempt == 2 or "Address already in use" not in self.log():
                        raise
        except BaseException:
            self.close()
            raise

    # close - stop the server and remove the directory
    def close(self):
        self.stop()
        if self.dir is not None and not self._attached:
            shutil.rmtree(self.dir, ignore_errors=True)

    # start - (re)start Dovecot on the same ports and data; returns once all
    # four ports answer (a greeting on the plain ones, a verified TLS handshake
    # on the others). Raises RuntimeError with the log if it does not come up.
    def start(self):
        if self._attached:
            raise RuntimeError("start/stop belong to the process that ran `serve`")
        if self.proc is not None:
            raise RuntimeError("Dovecot is already running")
        # A fresh base_dir: a stale socket left by the last run stalls the auth process.
        shutil.rmtree(self.dir / "run", ignore_errors=True)
        with open(self.dir / "dovecot.stderr", "ab") as err:
            self.proc = subprocess.Popen([self.dovecot_bin, "-F", "-c", str(self.dir / "dovecot.conf")],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Dovecot did not start (exit {self.proc.poll()}):\n{self.log()}")
            time.sleep(0.02)

    # stop - SIGTERM the master and wait. Its mail processes would keep their
    # clients connected for ~10 s more, so they get SIGTERM too (clients see
    # "* BYE Server shutting down."); SIGKILL for anything left after 6 s.
    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        # The log process goes last (it ends by itself once its writers are gone).
        for sig, spare_log in ((signal.SIGTERM, True), (signal.SIGTERM, False), (signal.SIGKILL, False)):
            for pid, service in self._pids():
                if not (spare_log and service == "log"):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
            deadline = time.monotonic() + 3
            while self._pids() and time.monotonic() < deadline:
                time.sleep(0.02)

    # _pids - [(pid, service)] of the processes of this instance still alive
    # (the master titles them "dovecot-<instance>/<service>")
    def _pids(self):
        prefix = f"dovecot-{self.instance}/".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    title = (entry / "cmdline").read_bytes().split(b"\0")[0]
                    if title.startswith(prefix):
                        found.append((int(entry.name), title[len(prefix):].decode(errors="replace")))
        return found

    # _ready - whether all four listeners serve clients
    def _ready(self):
        ctx = ssl.create_default_context(cafile=self.ca_file)
        try:
            for port, greeting in ((self.imap_port, b"* OK"), (self.pop3_port, b"+OK")):
                with socket.create_connection((self.host, port), timeout=2) as sock:
                    if not sock.makefile("rb").readline().startswith(greeting):
                        return False
            for port in (self.imaps_port, self.pop3s_port):
                with socket.create_connection((self.host, port), timeout=2) as sock:
                    ctx.wrap_socket(sock, server_hostname="localhost").close()
            return True
        except (OSError, ssl.SSLError):
            return False

    # log - the server log so far (plus anything Dovecot wrote to stderr)
    def log(self):
        parts = []
        for name in ("dovecot.stderr", "dovecot.log"):
            with contextlib.suppress(OSError):
                parts.append((self.dir / name).read_text(errors="replace"))
        return "".join(parts)

    # -- files ----------------------------------------------------------------

    # _setup_files - CA, certificates, password files and the mail root.
    # Root: the directory is 0711 so that `nobody` reaches mail/ (which it
    # owns) and the `dovecot` auth process reads the password files (0644).
    def _setup_files(self):
        root = os.geteuid() == 0
        if root:
            nobody = pwd.getpwnam("nobody")
            self._internal_user, self._login_user, self._internal_group = "dovecot", "dovenull", "dovecot"
            self._mail_uid, self._mail_gid = nobody.pw_uid, nobody.pw_gid
        else:
            me = pwd.getpwuid(os.getuid()).pw_name
            self._internal_user = self._login_user = me
            self._internal_group = grp.getgrgid(os.getgid()).gr_name
            self._mail_uid, self._mail_gid = os.getuid(), os.getgid()
        os.chmod(self.dir, 0o711)
        (self.dir / "state").mkdir()
        mail = self.dir / "mail"
        mail.mkdir(mode=0o700)
        if root:
            os.chown(mail, self._mail_uid, self._mail_gid)
        self._make_certs(self.dir / "tls")
        for name, secret in (("passwd", self.users), ("oauth-tokens", self._tokens)):
            (self.dir / name).write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in secret.items()))
            os.chmod(self.dir / name, 0o644)

    # _make_certs - with openssl(1): ca.pem signing server.pem (localhost,
    # 127.0.0.1), and an unrelated bad-ca.pem
    def _make_certs(self, tls):
        openssl = _which("openssl")
        if openssl is None:
            raise RuntimeError("openssl(1) is needed to make the test certificates")
        tls.mkdir(mode=0o700)
        cnf = tls / "openssl.cnf"
        cnf.write_text(OPENSSL_CNF)
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

        def run(*args):
            proc = subprocess.run([openssl, *map(str, args)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"openssl {args[0]} failed:\n{proc.stderr}")

        for name, cn in (("ca", "mailbridge test CA"), ("bad-ca", "mailbridge untrusted CA")):
            run("req", "-x509", "-config", cnf, "-extensions", "ca", *newkey, "-days", "30",
                "-subj", f"/CN={cn}", "-keyout", tls / f"{name}.key", "-out", tls / f"{name}.pem")
        run("req", "-new", "-config", cnf, *newkey, "-subj", "/CN=localhost",
            "-keyout", tls / "server.key", "-out", tls / "server.csr")
        run("x509", "-req", "-in", tls / "server.csr", "-CA", tls / "ca.pem", "-CAkey", tls / "ca.key",
            "-set_serial", "0x" + secrets.token_hex(8), "-days", "30",
            "-extfile", cnf, "-extensions", "server", "-out", tls / "server.pem")
        os.chmod(tls, 0o755)  # the CA files are for everyone; the keys stay 0600
        for name in ("ca.pem", "bad-ca.pem", "server.pem"):
            os.chmod(tls / name, 0o644)
        self.ca_file, self.bad_ca_file = str(tls / "ca.pem"), str(tls / "bad-ca.pem")

    # _write_config - dovecot.conf for the chosen ports. Only settings that
    # differ from Dovecot's defaults, each for a reason given beside it.
    def _write_config(self):
        d = self.dir
        capability = ""
        if not (self.idle and self.move):
            hidden = {"IDLE"} if not self.idle else set()
            hidden |= {"MOVE"} if not self.move else set()
            capability = (f"# Advertise all but {' and '.join(sorted(hidden))}.\nimap_capability = "
                          + " ".join(c for c in CAPABILITIES if c not in hidden))
        # Without root there is no chroot(2): those services run unchrooted.
        chroot = "" if os.geteuid() == 0 else "\n  chroot ="
        (d / "dovecot.conf").write_text(f"""\
# Generated by tests/integration/dovecot.py - a private test server.
instance_name = {self.instance}
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
protocols = imap pop3
listen = {HOST}
default_internal_user = {self._internal_user}
default_login_user = {self._login_user}
default_internal_group = {self._internal_group}
# Mail is read and written as uid {self._mail_uid} (see the Dovecot class).
first_valid_uid = {self._mail_uid}

ssl = yes
ssl_cert = <{d}/tls/server.pem
ssl_key = <{d}/tls/server.key

# Loopback tests also log in before STARTTLS.
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2
auth_username_format = %u
auth_verbose = yes
# Answer a failed login at once (the default is 2 s)...
auth_failure_delay = 0
# ...and without the growing per-IP penalty: the auth process finds no
# anvil-auth-penalty socket, which Dovecot treats as "penalty off".
service anvil {{{chroot}
  unix_listener anvil-auth-penalty {{
    path = anvil-auth-penalty-off
  }}
}}
# XOAUTH2 hands its bearer token to the passdb as the password: tokens live in
# their own file, used for XOAUTH2 only, and passwords only for PLAIN/LOGIN.
passdb {{
  driver = passwd-file
  args = {d}/oauth-tokens
  mechanisms = xoauth2
}}
passdb {{
  driver = passwd-file
  args = {d}/passwd
  mechanisms = plain login
}}
userdb {{
  driver = static
  args = uid={self._mail_uid} gid={self._mail_gid} home={d}/mail/%u
}}
mail_location = maildir:{d}/mail/%u/Maildir
# A daemon, the harness and a test can all be logged in at once.
mail_max_userip_connections = 100

# "* OK Still here" every 5 s in IDLE; new mail is reported at once (inotify,
# else a check every second).
imap_idle_notify_interval = 5 secs
mailbox_idle_check_interval = 1 secs
{capability}
pop3_uidl_format = %08Xu%08Xv

service imap-login {{{chroot}
  inet_listener imap {{
    address = {HOST}
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service pop3-login {{{chroot}
  inet_listener pop3 {{
    address = {HOST}
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    address = {HOST}
    port = {self.pop3s_port}
    ssl = yes
  }}
}}
""")

    # -- what tests use --------------------------------------------------------

    # oauth_token - the bearer token XOAUTH2 accepts for USER
    def oauth_token(self, user):
        return self._tokens[user]

    # maildir - USER's Maildir (INBOX; other folders are .NAME inside it)
    def maildir(self, user):
        return self.dir / "mail" / user / "Maildir"

    # state - what `serve` writes to its state file
    def state(self):
        return {"host": self.host, "imap_port": self.imap_port, "imaps_port": self.imaps_port,
                "pop3_port": self.pop3_port, "pop3s_port": self.pop3s_port,
                "ca_file": self.ca_file, "bad_ca_file": self.bad_ca_file, "dir": str(self.dir),
                "users": self.users, "oauth_tokens": self._tokens,
                "log_file": str(self.dir / "dovecot.log")}

    # attach - a handle on the server a `serve` process runs, from its STATE:
    # every method but start/stop works
    @classmethod
    def attach(cls, state):
        self = cls(users=state["users"])
        self.dir = Path(state["dir"])
        for key in ("imap_port", "imaps_port", "pop3_port", "pop3s_port", "ca_file", "bad_ca_file"):
            setattr(self, key, state[key])
        self._tokens = dict(state["oauth_tokens"])
        self._attached = True
        return self

    # _session - an IMAP session logged in as USER (plain port, LOGIN)
    @contextlib.contextmanager
    def _session(self, user):
        imap = imaplib.IMAP4(self.host, self.imap_port, timeout=30)
        try:
            _check(*imap.login(user, self.users[user]), "LOGIN")
            yield imap
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                imap.logout()

    # _examine - EXAMINE FOLDER; returns (EXISTS, UIDVALIDITY, UIDNEXT)
    @staticmethod
    def _examine(imap, folder):
        exists = int(_check(*imap.select(_quote(folder), readonly=True), f"EXAMINE {folder}")[0])
        return (exists, int(imap.response("UIDVALIDITY")[1][0]),
                int(imap.response("UIDNEXT")[1][0]))

    # append - APPEND RAW to USER's FOLDER (created if missing) with FLAGS, e.g.
    # ("\\Seen", "$Label1") or "\\Seen \\Flagged"; returns its UID. Line ends
    # become CRLF (imaplib sends them so).
    def append(self, user, folder, raw, flags=()):
        if isinstance(flags, str):
            flags = flags.split()
        with self._session(user) as imap:
            imap.create(_quote(folder))  # NO when it exists, which is fine
            data = _check(*imap.append(_quote(folder), f"({' '.join(flags)})" if flags else None,
                                       None, raw), f"APPEND {folder}")
            match = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0])
            if match is None:
                raise RuntimeError(f"APPEND {folder}: no APPENDUID in {data!r}")
            return int(match.group(1))

    # messages - [(uid, flags, raw)] of USER's FOLDER by UID, read without
    # changing anything; flags is a set such as {"\\Seen"}, without the
    # per-session \Recent; raw is the message as IMAP sends it (CRLF)
    def messages(self, user, folder):
        with self._session(user) as imap:
            if self._examine(imap, folder)[0] == 0:
                return []
            flags = {}
            for line in _check(*imap.uid("FETCH", "1:*", "(FLAGS)"), "FETCH FLAGS"):
                uid = re.search(rb"UID (\d+)", line)
                found = re.search(rb"FLAGS \(([^)]*)\)", line)
                if uid and found:
                    flags[int(uid.group(1))] = set(found.group(1).decode().split()) - {"\\Recent"}
            out = []
            for item in _check(*imap.uid("FETCH", "1:*", "(BODY.PEEK[])"), "FETCH BODY"):
                if isinstance(item, tuple):
                    uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
                    out.append((uid, flags.get(uid, set()), item[1]))
            return sorted(out, key=lambda m: m[0])

    # delete - what a person does to a message: \Deleted and expunged
    def delete(self, user, folder, uid):
        with self._session(user) as imap:
            _check(*imap.select(_quote(folder)), f"SELECT {folder}")
            _check(*imap.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)"), "STORE")
            _check(*imap.expunge(), "EXPUNGE")

    # folders - USER's folder names, sorted
    def folders(self, user):
        with self._session(user) as imap:
            names = []
            for line in _check(*imap.list(), "LIST"):
                match = re.fullmatch(rb'\([^)]*\) (?:"[^"]*"|NIL) (.*)', line)
                if match:
                    name = match.group(1).decode()
                    if name.startswith('"'):
                        name = re.sub(r"\\(.)", r"\1", name[1:-1])
                    names.append(name)
            return sorted(names)

    # uidvalidity - UIDVALIDITY of USER's FOLDER
    def uidvalidity(self, user, folder):
        with self._session(user) as imap:
            return self._examine(imap, folder)[1]

    # reset_uidvalidity - make USER's FOLDER look rebuilt: the same messages
    # (files and flags untouched) under UIDVALIDITY + 1 with new UIDs from the
    # old UIDNEXT on, so no old UID names a message any more. Done the way an
    # index loss happens: under Dovecot's uidlist lock, a new dovecot-uidlist
    # without records and no index files. USER's sessions are then kicked
    # (clients see "* BYE", reconnect and find the new UIDVALIDITY). Returns
    # the new UIDVALIDITY.
    def reset_uidvalidity(self, user, folder):
        with self._session(user) as imap:
            _, validity, uidnext = self._examine(imap, folder)
        box = self.maildir(user) if folder.upper() == "INBOX" else self.maildir(user) / f".{folder}"
        uidlist = box / "dovecot-uidlist"
        with _dotlock(box / "dovecot-uidlist.lock"):
            lines = uidlist.read_text().splitlines() if uidlist.exists() else ["3"]
            header = dict((tok[0], tok[1:]) for tok in lines[0].split()[1:])
            uids = [int(line.split()[0]) for line in lines[1:] if line.strip()]
            validity = max(validity, int(header.get("V", 0))) + 1
            uidnext = max([uidnext, int(header.get("N", 0)), *(u + 1 for u in uids)])
            owner = box.stat()
            tmp = box / "dovecot-uidlist.mbtmp"
            tmp.write_text(f"3 V{validity} N{uidnext}\n")
            os.chmod(tmp, 0o600)
            if os.geteuid() == 0:
                os.chown(tmp, owner.st_uid, owner.st_gid)
            os.replace(tmp, uidlist)
            for index in [*box.glob("dovecot.index*"), *self.maildir(user).glob("dovecot.list.index*")]:
                index.unlink()
        self._doveadm("kick", user, ok=(0, 68))  # 68: nobody was logged in
        return validity

    # _doveadm - run doveadm ARGS against this server; OK are the accepted exit codes
    def _doveadm(self, *args, ok=(0,)):
        proc = subprocess.run([self.doveadm_bin, "-c", str(self.dir / "dovecot.conf"), *args],
                              capture_output=True, text=True)
        if proc.returncode not in ok:
            raise RuntimeError(f"doveadm {' '.join(args)}: exit {proc.returncode}: {proc.stderr}")


# _free_ports - N distinct free TCP ports on HOST (held open together while
# choosing so they differ; another process may still take one before Dovecot
# binds it: Dovecot.open retries)
def _free_ports(n):
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.bind((HOST, 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


# _dotlock - hold PATH the way Dovecot's dotlocks work (create it exclusively,
# remove it after); waits up to 10 s for Dovecot to release it
@contextlib.contextmanager
def _dotlock(path):
    deadline = time.monotonic() + 10
    while True:
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} is still held after 10 s") from None
            time.sleep(0.02)
    try:
        yield
    finally:
        os.unlink(path)


# -- command line for the C tests ----------------------------------------------

# _write_json - write OBJ to PATH atomically (a reader never sees half of it)
def _write_json(path, obj):
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    os.replace(tmp, path)


# _serve - start a server, publish its state file, run until SIGTERM/SIGINT
# or until the process that started us is gone (a crashed test must not leave
# a server behind)
def _serve(args):
    users = dict(item.split(":", 1) for item in args.users.split(",")) if args.users else None
    state_file = Path(args.state_file)
    state_file.unlink(missing_ok=True)
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    parent = os.getppid()
    with Dovecot(users=users) as dc:
        _write_json(state_file, dc.state())
        try:
            while not stopping and os.getppid() == parent:
                time.sleep(0.1)
        finally:
            state_file.unlink(missing_ok=True)
    return 0


# _attached - the server described by ARGS.state_file
def _attached(args):
    return Dovecot.attach(json.loads(Path(args.state_file).read_text()))


# _append - print the UID of FILE ("-": stdin) appended to USER's FOLDER
def _append(args):
    raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    # '\\Seen' as typed in a C string or shell reaches us as one or two backslashes
    flags = [re.sub(r"^\\+", "\\\\", f) for f in args.flags.split()] if args.flags else ()
    print(_attached(args).append(args.user, args.folder, raw, flags))
    return 0


# _messages - print USER's FOLDER as JSON [{uid, flags, size, sha256}]
def _messages(args):
    out = [{"uid": uid, "flags": sorted(flags), "size": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest()}
           for uid, flags, raw in _attached(args).messages(args.user, args.folder)]
    print(json.dumps(out))
    return 0


# _reset - reset_uidvalidity; prints the new UIDVALIDITY
def _reset(args):
    print(_attached(args).reset_uidvalidity(args.user, args.folder))
    return 0


# main - the CLI; exits 77 when Dovecot is not installed
def main(argv=None):
    parser = argparse.ArgumentParser(description="A private Dovecot IMAP/POP3 server for tests.")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("serve", help="run a server until SIGTERM (or until our parent process "
                                       "exits); its details go to the state file")
    cmd.add_argument("--state-file", required=True,
                     help="JSON written atomically once the server is ready, removed at exit")
    cmd.add_argument("--users", help="user:password,... (default support:secret,sales:secret2)")
    cmd.set_defaults(run=_serve)
    cmd = sub.add_parser("append", help="append a message; prints its UID")
    cmd.add_argument("--state-file", required=True)
    cmd.add_argument("--flags", help="space-separated, e.g. '\\Seen \\Flagged'")
    cmd.add_argument("user")
    cmd.add_argument("folder")
    cmd.add_argument("file", help="the raw message; - reads stdin")
    cmd.set_defaults(run=_append)
    cmd = sub.add_parser("messages",
                         help="print [{uid, flags, size, sha256}] as JSON (size and sha256 of "
                              "the message as IMAP sends it, with CRLF line ends)")
    cmd.add_argument("--state-file", required=True)
    cmd.add_argument("user")
    cmd.add_argument("folder")
    cmd.set_defaults(run=_messages)
    cmd = sub.add_parser("reset-uidvalidity",
                         help="new UIDVALIDITY and UIDs for a folder; prints the UIDVALIDITY")
    cmd.add_argument("--state-file", required=True)
    cmd.add_argument("user")
    cmd.add_argument("folder")
    cmd.set_defaults(run=_reset)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except DovecotUnavailable as err:
        sys.stderr.write(f"dovecot.py: {err}\n")
        return EXIT_SKIP


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""test_itx_emulator - the ITX emulator enforces its contract (README.md).

Starts itx_emulator.py on a free port through the integration harness and
proves each rule with raw http.client requests: what is refused, what is
stored, and every injected fault as a client sees it.
"""

import http.client
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import harness  # noqa: E402

MESSAGE = "/rest/itxems/message"
SEARCH = "/rest/itxems/message/search"
BOUNDARY = "7515efc9e7db416d86cea913c1a949ff"
FORM_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
# Binary image bytes with CRLF, NUL and a near-boundary inside.
PNG = b"\x89PNG\r\n\x1a\n\x00\xff\r\n--7515efc9\r\n--\r\n"
PDF = b"%PDF-1.4\r\n%\xe2\xe3\xcf\xd3\r\n"
SEED_DATA = {
    "eeexId": 3378825,
    "direction": 2,
    "subject": "Jeg har et spørsmål",
    "body": "<p>Hei!<br>Kan dere se på dette...?<br>Mvh. ITX<br><img width='100px' src='files[0]'></p>",
    "createCase": True,
}
# The seed's data without the image reference, for messages without files.
PLAIN_DATA = dict(SEED_DATA, body="<p>Hei!</p>")


# form - a multipart body from (header lines, content) pairs, CRLF throughout
def form(*parts):
    out = b""
    for headers, content in parts:
        out += f"--{BOUNDARY}\r\n".encode() + "".join(h + "\r\n" for h in headers).encode()
        out += b"\r\n" + content + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


# data_part - the `data` part holding OBJ (or raw bytes) with CTYPE
def data_part(obj, ctype="application/json"):
    content = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return (['Content-Disposition: form-data; name="data"', f"Content-Type: {ctype}"], content)


# file_part - one `files` part
def file_part(filename, ctype, content):
    return ([f'Content-Disposition: form-data; name="files"; filename="{filename}"',
             f"Content-Type: {ctype}"], content)


# with_data - PLAIN_DATA changed by CHANGES (a None value removes the key)
def with_data(**changes):
    data = dict(PLAIN_DATA, **changes)
    return {k: v for k, v in data.items() if v is not None}


class ItxEmulatorContract(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.itx = cls.enterClassContext(harness.Emulator())

    def setUp(self):
        self.itx.reset()

    # post - a raw multipart body to the message endpoint
    def post(self, body, ctype=FORM_TYPE, **kw):
        return self.itx.request("POST", MESSAGE, body=body, headers={"Content-Type": ctype}, **kw)

    # assert_error - STATUS with a JSON {"error"} that mentions WORD
    def assert_error(self, resp, status, word):
        self.assertEqual(resp.status, status, resp.body)
        self.assertIn(word, resp.json()["error"])

    # seed_case - the seed's example (one image, one PDF); returns the answer JSON
    def seed_case(self):
        resp = self.post(form(data_part(SEED_DATA), file_part("itx_logo.png", "image/png", PNG),
                              file_part("sample.pdf", "application/pdf", PDF)))
        self.assertEqual(resp.status, 200, resp.body)
        return resp.json()

    def test_auth_is_required_and_checked(self):
        good = self.itx.auth_headers()
        cases = [
            ({}, "tokenv2"),
            (dict(good, tokenv2="wrong"), "tokenv2"),
            (dict(good, rcntrl="eleven"), "rcntrl"),
            (dict(good, rcntrl="11.0"), "rcntrl"),
            (dict(good, ccntrl="23"), "ccntrl"),
            ({"tokenv2": "test-token", "rcntrl": "11"}, "ccntrl"),
            ({"tokenv2": "", "rcntrl": "11", "ccntrl": "22"}, "tokenv2"),
        ]
        for headers, word in cases:
            with self.subTest(headers=headers):
                resp = self.itx.request("POST", SEARCH, body=b"{}", auth=False,
                                        headers=dict(headers, **{"Content-Type": "application/json"}))
                self.assert_error(resp, 401, word)
        resp = self.itx.request("POST", SEARCH + "?tokenv2=test-token&rcntrl=11&ccntrl=22",
                                body=b"{}", auth=False, headers={"Content-Type": "application/json"})
        self.assertEqual(resp.status, 200, "credentials as query parameters are accepted")
        self.assertEqual([r["status"] for r in self.itx.requests()], [401] * len(cases) + [200])

    def test_message_must_be_multipart(self):
        resp = self.post(json.dumps(SEED_DATA).encode(), ctype="application/json")
        self.assert_error(resp, 400, "multipart/form-data")
        self.assert_error(self.post(form(data_part(SEED_DATA)), ctype="multipart/form-data"),
                          400, "boundary")

    def test_malformed_multipart_is_refused(self):
        good = form(data_part(SEED_DATA))
        cases = [
            ("no closing delimiter", good[:-len(BOUNDARY) - 6] + b"\r\n", "closing delimiter"),
            ("LF line ends", good.replace(b"\r\n", b"\n"), "CRLF"),
            ("part without name", form((['Content-Disposition: form-data', "Content-Type: "
                                         "application/json"], b"{}")), "no name"),
            ("no Content-Disposition", form((["Content-Type: application/json"], b"{}")),
             "Content-Disposition"),
            ("no delimiter at all", b"just text", "delimiter"),
            ("unknown field", form(data_part(SEED_DATA), ([
                'Content-Disposition: form-data; name="attachment"'], b"x")), "attachment"),
            ("two data parts", form(data_part(SEED_DATA), data_part(SEED_DATA)), "exactly one data"),
            ("base64 part", form(([
                'Content-Disposition: form-data; name="data"', "Content-Type: application/json",
                "Content-Transfer-Encoding: base64"], b"e30=")), "Content-Transfer-Encoding"),
        ]
        for name, body, word in cases:
            with self.subTest(name):
                self.assert_error(self.post(body), 400, word)
        self.assertEqual(self.itx.messages(), [])

    def test_data_part_must_be_json_object(self):
        cases = [
            ("missing", form(file_part("a.png", "image/png", PNG)), "data"),
            ("no Content-Type", form(([
                'Content-Disposition: form-data; name="data"'], json.dumps(SEED_DATA).encode())),
             "Content-Type"),
            ("text/plain", form(data_part(SEED_DATA, ctype="text/plain")), "application/json"),
            ("invalid JSON", form(data_part(b'{"eeexId": 3378825,')), "not valid JSON"),
            ("array", form(data_part([SEED_DATA])), "JSON object"),
            ("duplicate key", form(data_part(b'{"eeexId": 1, "eeexId": 2}')), "duplicate"),
        ]
        for name, body, word in cases:
            with self.subTest(name):
                self.assert_error(self.post(body), 400, word)

    def test_fields_are_required_and_typed(self):
        cases = [
            (with_data(eeexId=None), "eeexId"),
            (with_data(direction=None), "direction"),
            (with_data(subject=None), "subject"),
            (with_data(body=None), "body"),
            (with_data(eeexId="3378825"), "eeexId"),
            (with_data(eeexId=True), "eeexId"),
            (with_data(eeexId=3378825.0), "eeexId"),
            (with_data(direction=3), "direction"),
            (with_data(direction="2"), "direction"),
            (with_data(subject=5), "subject"),
            (with_data(createCase="true"), "createCase"),
            (with_data(isDraft=1), "isDraft"),
            (with_data(corpId="7"), "corpId"),
            (with_data(contactEeexId=0), "contactEeexId"),
            (with_data(replyToEactId=None, createCase=None, caseEactId="501"), "caseEactId"),
            (with_data(draft=False), "draft"),
        ]
        for data, field in cases:
            with self.subTest(field=field, data=data):
                self.assert_error(self.post(form(data_part(data))), 400, field)
        self.assertEqual(self.itx.messages(), [])

    def test_case_is_created_or_named_not_both(self):
        self.assert_error(self.post(form(data_part(with_data(caseEactId=501)))), 400, "not both")
        self.assert_error(self.post(form(data_part(with_data(createCase=None)))), 400, "caseEactId")
        self.assert_error(self.post(form(data_part(with_data(createCase=False)))), 400, "caseEactId")
        self.assert_error(self.post(form(data_part(with_data(createCase=None, caseEactId=999)))),
                          404, "999")
        self.assert_error(self.post(form(data_part(with_data(eactId=1001)))), 400, "eactId")

    def test_embedded_files_must_exist_and_be_images(self):
        two_refs = with_data(body="<img src='files[0]'><img src='files[1]'>")
        self.assert_error(self.post(form(data_part(two_refs), file_part("a.png", "image/png", PNG))),
                          400, "files[1]")
        self.assert_error(self.post(form(data_part(SEED_DATA),
                                         file_part("sample.pdf", "application/pdf", PDF))),
                          400, "image/*")
        no_name = (['Content-Disposition: form-data; name="files"', "Content-Type: image/png"], PNG)
        self.assert_error(self.post(form(data_part(SEED_DATA), no_name)), 400, "filename")
        no_type = (['Content-Disposition: form-data; name="files"; filename="a.png"'], PNG)
        self.assert_error(self.post(form(data_part(SEED_DATA), no_type)), 400, "Content-Type")
        self.assertEqual(self.itx.messages(), [])

    def test_new_case_stores_files_and_rewrites_body(self):
        answer = self.seed_case()
        self.assertEqual(answer, {
            "eactId": 1001, "conversationEactId": 1001, "caseEactId": 501, "replyToEactId": None,
            "eeexId": 3378825, "direction": 2, "subject": SEED_DATA["subject"], "isDraft": False,
            "files": [
                {"id": 388537, "filename": "itx_logo.png", "contentType": "image/png",
                 "size": len(PNG)},
                {"id": 388538, "filename": "sample.pdf", "contentType": "application/pdf",
                 "size": len(PDF)},
            ]})
        [stored] = self.itx.messages()
        self.assertEqual(stored["body"], SEED_DATA["body"].replace("files[0]",
                                                                   "rest/core/corefile/i/388537"))
        self.assertTrue(stored["createCase"])
        self.assertEqual(len(stored["files"][0]["sha256"]), 64)
        for ident, content, ctype in ((388537, PNG, "image/png"), (388538, PDF, "application/pdf")):
            resp = self.itx.request("GET", f"/rest/core/corefile/i/{ident}")
            self.assertEqual((resp.status, resp.body, resp.headers["Content-Type"]),
                             (200, content, ctype))
        self.assertEqual(self.itx.request("GET", "/rest/core/corefile/i/388537", auth=False).status,
                         401)
        self.assertEqual(self.itx.request("GET", "/rest/core/corefile/i/1").status, 404)

    def test_follow_up_joins_case_and_conversation(self):
        self.seed_case()
        first = self.post(form(data_part(with_data(createCase=None, caseEactId=501, body="more"))))
        self.assertEqual(first.status, 200, first.body)
        self.assertEqual({k: first.json()[k] for k in ("eactId", "conversationEactId", "caseEactId")},
                         {"eactId": 1002, "conversationEactId": 1001, "caseEactId": 501})
        reply = self.itx.post_message(with_data(createCase=None, caseEactId=501, direction=1,
                                                replyToEactId=1002, body="answer"))
        self.assertEqual(reply.status, 200, reply.body)
        self.assertEqual(
            {k: reply.json()[k] for k in ("eactId", "conversationEactId", "replyToEactId")},
            {"eactId": 1003, "conversationEactId": 1001, "replyToEactId": 1002})
        self.assert_error(self.itx.post_message(with_data(createCase=None, caseEactId=501,
                                                          replyToEactId=4242)), 404, "4242")
        self.assertEqual(self.itx.post_message(with_data(body="other case")).json()["caseEactId"], 502)
        self.assert_error(self.itx.post_message(with_data(createCase=None, caseEactId=502,
                                                          replyToEactId=1002)), 400, "1002")
        self.assert_error(self.itx.post_message(with_data(replyToEactId=1001)), 400, "caseEactId")
        in_conv = self.itx.post_message(with_data(createCase=None, caseEactId=501,
                                                  conversationEactId=1001))
        self.assertEqual(in_conv.json()["conversationEactId"], 1001)
        for conv, status in ((1002, 400), (1004, 400), (9999, 404)):
            with self.subTest(conversationEactId=conv):
                self.assert_error(self.itx.post_message(with_data(
                    createCase=None, caseEactId=501, conversationEactId=conv)), status, str(conv))

    def test_search_filters_pages_and_hides_content(self):
        self.seed_case()                                                  # 1001, case 501
        self.itx.post_message(with_data(createCase=None, caseEactId=501, direction=1,
                                        replyToEactId=1001, body="agent"))  # 1002
        self.itx.post_message(with_data(body="second case", eeexId=7, corpId=9))  # 1003, case 502
        self.itx.post_message(with_data(createCase=None, caseEactId=501, direction=1,
                                        isDraft=True, body="draft"))    # 1004

        def search(filters):
            resp = self.itx.search(filters)
            self.assertEqual(resp.status, 200, resp.body)
            return resp

        resp = search({"limitFrom": 1, "limitTo": 2, "getTotalActivityCount": True})
        self.assertEqual([m["eactId"] for m in resp.json()], [1002, 1003])
        self.assertEqual(resp.headers["ITX-Total-Found"], "4")
        self.assertNotIn("body", resp.json()[0])
        self.assertIsNone(search({}).headers["ITX-Total-Found"])
        hits = search({"direction": 1, "isDraft": False, "getContent": True}).json()
        self.assertEqual([(m["eactId"], m["body"]) for m in hits], [(1002, "agent")])
        self.assertEqual([m["eactId"] for m in search({"caseEactId": 501}).json()],
                         [1001, 1002, 1004])
        self.assertTrue(search({"isDraft": True}).json()[0]["isDraft"])
        [hit] = search({"corpId": 9}).json()
        self.assertEqual((hit["eactId"], hit["corpId"], hit["caseEactId"]), (1003, 9, 502))
        self.assertEqual([m["eactId"] for m in search({"getConversations": True}).json()],
                         [1001, 1003])
        self.assertEqual([m["eactId"] for m in search({"conversationEactId": 1001,
                                                       "eeexId": 3378825}).json()],
                         [1001, 1002, 1004])
        for bad in ({"limitTo": "10"}, {"getContent": "yes"}, {"limitTo": 0}, {"draft": False}):
            with self.subTest(bad=bad):
                self.assert_error(self.itx.search(bad), 400, next(iter(bad)))
        self.assert_error(self.itx.request("POST", SEARCH, body=b"{}"), 400, "application/json")

    def test_fault_status_answers_without_processing(self):
        self.itx.faults([{"status": 503, "body": "maintenance", "retry_after": "2"},
                         {"status": 429, "retry_after": 7}])
        resp = self.itx.post_message(SEED_DATA)
        self.assertEqual((resp.status, resp.body, resp.headers["Retry-After"]),
                         (503, b"maintenance", "2"))
        resp = self.itx.post_message(SEED_DATA)
        self.assertEqual((resp.status, resp.headers["Retry-After"]), (429, "7"))
        self.assertEqual(self.itx.messages(), [])
        self.assertEqual(self.itx.post_message(with_data(body="x")).status, 200, "queue drained")
        self.assertEqual([r["status"] for r in self.itx.requests()], [503, 429, 200])

    def test_fault_delay_holds_the_answer(self):
        self.itx.faults([{"delay_ms": 1500}, {"delay_ms": 10}])
        with self.assertRaises(socket.timeout):
            self.post(form(data_part(with_data(body="slow"))), timeout=0.3)
        for _ in range(500):  # the delayed request is still processed
            if self.itx.requests():
                break
            time.sleep(0.01)
        self.assertEqual(self.itx.requests()[0]["status"], 200)
        self.assertEqual(self.itx.post_message(with_data(body="x")).status, 200)
        self.assertEqual([m["body"] for m in self.itx.messages()], ["slow", "x"])

    def test_fault_reset_closes_without_processing(self):
        self.itx.faults([{"reset": True}])
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.itx.post_message(SEED_DATA)
        self.assertEqual(self.itx.messages(), [])
        self.assertEqual(self.itx.requests(), [{"method": "POST", "path": MESSAGE, "status": None}])

    def test_fault_drop_response_stores_but_never_answers(self):
        self.itx.faults([{"drop_response": True}])
        with self.assertRaises((ConnectionError, http.client.HTTPException)):
            self.itx.post_message(with_data(body="lost answer"))
        self.assertEqual([(m["eactId"], m["body"]) for m in self.itx.messages()],
                         [(1001, "lost answer")])
        self.assertIsNone(self.itx.requests()[0]["status"])

    def test_fault_path_restricts_it(self):
        self.itx.faults([{"status": 500, "path": SEARCH}])
        self.assertEqual(self.itx.post_message(with_data(body="x")).status, 200)
        self.assertEqual(self.itx.search({}).status, 500)
        self.assertEqual(self.itx.search({}).status, 200)

    def test_fault_match_picks_the_request_by_body(self):
        self.itx.faults([{"status": 500, "match": "\"limitTo\": 7"}])
        self.assertEqual(self.itx.search({"limitTo": 1}).status, 200)
        self.assertEqual(self.itx.search({"limitTo": 7}).status, 500)
        self.assertEqual(self.itx.search({"limitTo": 7}).status, 200, "taken once")

    def test_fault_await_holds_until_enough_requests_are_in(self):
        self.itx.faults([{"await": 2, "status": 201, "match": "\"limitTo\": 1"},
                         {"await": 2, "match": "\"limitTo\": 2"}])
        results = {}
        first = threading.Thread(target=lambda: results.update(a=self.itx.search({"limitTo": 1})))
        first.start()
        # each is held until the other has come in too (whichever arrives first)
        results["b"] = self.itx.search({"limitTo": 2})
        first.join(30)
        self.assertEqual(results["a"].status, 201)
        self.assertEqual(results["b"].status, 200)

    def test_bad_faults_are_refused(self):
        for bad in ([{"status": 503, "reset": True}], [{"reset": False}], [{}], [{"status": "503"}],
                    [{"retry_after": "1"}], [{"delay_ms": -1}], [{"status": 500, "path": "rest"}],
                    [{"status": 500, "colour": "red"}], [{"await": 1}], [{"await": True}],
                    [{"status": 500, "match": 3}]):
            with self.subTest(bad=bad):
                resp = self.itx.request("POST", "/_emulator/faults", auth=False,
                                        body=json.dumps({"faults": bad}).encode())
                self.assertEqual(resp.status, 400, resp.body)
        self.assertEqual(self.itx.search({}).status, 200, "nothing was queued")

    def test_keep_alive_serves_several_requests_on_one_connection(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.itx.port, timeout=10)
        headers = dict(self.itx.auth_headers(), **{"Content-Type": "application/json"})
        try:
            conn.connect()
            sock = conn.sock
            conn.request("POST", SEARCH, body=b'{"limitTo": "x"}', headers=headers)
            first = conn.getresponse()
            self.assertEqual((first.status, first.will_close), (400, False))
            first.read()
            conn.request("POST", SEARCH, body=b"{}", headers=headers)
            second = conn.getresponse()
            self.assertEqual((second.status, second.read()), (200, b"[]"))
            self.assertIs(conn.sock, sock, "the same connection served both")
        finally:
            conn.close()

    def test_chunked_request_body_is_read(self):
        body = form(data_part(SEED_DATA), file_part("logo.png", "image/png", PNG))
        conn = http.client.HTTPConnection("127.0.0.1", self.itx.port, timeout=10)
        try:
            conn.request("POST", MESSAGE, body=iter([body[:100], body[100:]]), encode_chunked=True,
                         headers=dict(self.itx.auth_headers(), **{"Content-Type": FORM_TYPE,
                                                                  "Transfer-Encoding": "chunked"}))
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200, resp.read())
        finally:
            conn.close()
        self.assertEqual(self.itx.messages()[0]["files"][0]["size"], len(PNG))

    def test_body_over_64_mib_is_refused(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.itx.port, timeout=10)
        try:
            conn.putrequest("POST", MESSAGE)
            for name, value in dict(self.itx.auth_headers(), **{
                    "Content-Type": FORM_TYPE, "Content-Length": str(64 * 1024 * 1024 + 1)}).items():
                conn.putheader(name, value)
            conn.endheaders()
            resp = conn.getresponse()
            self.assertEqual((resp.status, resp.headers["Connection"]), (413, "close"))
        finally:
            conn.close()

    def test_post_without_length_has_an_empty_body(self):
        self.itx.faults([{"status": 500}])
        conn = http.client.HTTPConnection("127.0.0.1", self.itx.port, timeout=10)
        try:
            conn.putrequest("POST", "/_emulator/reset")  # as `curl -X POST` sends it
            conn.endheaders()
            self.assertEqual(conn.getresponse().status, 200)
        finally:
            conn.close()
        self.assertEqual(self.itx.search({}).status, 200, "the reset cleared the fault")

    def test_unknown_paths_and_methods(self):
        self.assert_error(self.itx.request("GET", MESSAGE), 405, "POST")
        self.assert_error(self.itx.request("GET", "/rest/itxems/nothing"), 404, "nothing")
        self.assertEqual(self.itx.request("GET", "/rest/itxems/nothing", auth=False).status, 401)

    def test_draft_comes_back_as_draft(self):
        resp = self.itx.post_message(with_data(isDraft=True))
        self.assertTrue(resp.json()["isDraft"])

    def test_reset_forgets_everything_and_restarts_ids(self):
        self.seed_case()
        self.itx.faults([{"status": 500}])
        self.itx.reset()
        self.assertEqual((self.itx.messages(), self.itx.requests()), ([], []))
        self.assertEqual(self.seed_case()["eactId"], 1001, "fault cleared, ids restarted")
        self.assertEqual(self.itx.request("GET", "/rest/core/corefile/i/388539").status, 404)


class ItxEmulatorCommandLine(unittest.TestCase):
    def test_credentials_port_file_and_sigterm(self):
        itx = harness.Emulator(tokenv2="other-token", rcntrl=5, ccntrl=6)
        with itx:
            self.assertIn(f"itx-emulator listening on http://127.0.0.1:{itx.port}", itx.log())
            self.assertEqual(itx.search({}).status, 200)
            self.assertEqual(itx.request("POST", SEARCH, body=b"{}", auth=False, headers={
                "tokenv2": "test-token", "rcntrl": "11", "ccntrl": "22",
                "Content-Type": "application/json"}).status, 401)
            self.assertEqual(itx.stop(), 0, "SIGTERM exits cleanly")

    @unittest.skipUnless(shutil.which("openssl"), "needs openssl to make a certificate")
    def test_tls(self):
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                            "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
            with harness.Emulator(tls_cert=cert, tls_key=key) as itx:
                self.assertTrue(itx.url.startswith("https://"))
                resp = itx.post_message(SEED_DATA, files=[("logo.png", "image/png", PNG)])
                self.assertEqual(resp.status, 200, resp.body)


if __name__ == "__main__":
    harness.main()

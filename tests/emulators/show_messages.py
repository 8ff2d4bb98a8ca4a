#!/usr/bin/env python3
"""show_messages - print what an ITX emulator holds: cases, messages, files.

  python3 tests/emulators/show_messages.py http://127.0.0.1:18480
"""
import json
import sys
import urllib.request


def main():
    base = sys.argv[1].rstrip("/")
    with urllib.request.urlopen(base + "/_emulator/messages", timeout=10) as resp:
        messages = json.load(resp)
    cases = {}
    for m in messages:
        cases.setdefault(m.get("caseEactId"), []).append(m)
    print(f"{len(cases)} case(s), {len(messages)} message(s), "
          f"{sum(len(m.get('files', [])) for m in messages)} attachment(s)")
    for case, msgs in cases.items():
        print(f"case {case}:")
        for m in msgs:
            if m.get("createCase"):
                kind = "new case"
            elif m.get("replyToEactId"):
                kind = f"follow-up (reply to message {m['replyToEactId']})"
            else:
                kind = "follow-up (found by the ticket token in the subject)"
            print(f"  message {m.get('eactId')}  customer {m.get('eeexId')}  {kind}")
            print(f"    subject: {m.get('subject')}")
            for f in m.get("files", []):
                print(f"    file {f.get('id')}: {f.get('filename')} ({f.get('contentType')}, {f.get('size')} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

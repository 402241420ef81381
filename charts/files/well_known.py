"""Serves the Matrix server name's /.well-known/matrix documents.

Synapse can serve them itself, but its server document names the server
name on port 443, which only helps when the whole server name reaches
Synapse. Here only /.well-known/matrix does, so the documents (rendered
into the ConfigMap next to this script) point clients and other servers at
the Matrix host instead.

Usage: python3 well_known.py DOCUMENT_DIR PORT   (BIND_ADDRESS, default 0.0.0.0)
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DOCUMENTS = ("server", "client")


def load(directory):
    docs = {}
    for name in DOCUMENTS:
        with open(os.path.join(directory, f"{name}.json"), "rb") as f:
            body = f.read()
        json.loads(body)  # refuse to start with a broken document
        docs[f"/.well-known/matrix/{name}"] = body
    return docs


def handler_for(docs):
    class Handler(BaseHTTPRequestHandler):
        server_version = "kudo-well-known"
        sys_version = ""

        def _headers(self, status, length):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(length))
            # Web clients fetch these documents cross-origin.
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
            self.send_header("Cache-Control", "public, max-age=3600")
            self.end_headers()

        def _answer(self):
            path = self.path.split("?", 1)[0]
            if path == "/health":
                return 200, b'{"status": "ok"}'
            if path in docs:
                return 200, docs[path]
            return 404, b'{"errcode": "M_NOT_FOUND"}'

        def do_GET(self):
            status, body = self._answer()
            self._headers(status, len(body))
            self.wfile.write(body)

        def do_HEAD(self):
            status, body = self._answer()
            self._headers(status, len(body))

        def do_OPTIONS(self):
            self._headers(204, 0)

        def log_message(self, format, *args):
            if "/health" not in self.path:
                super().log_message(format, *args)

    return Handler


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: well_known.py DOCUMENT_DIR PORT")
    docs = load(sys.argv[1])
    server = ThreadingHTTPServer((os.environ.get("BIND_ADDRESS", "0.0.0.0"), int(sys.argv[2])), handler_for(docs))
    print(f"serving {', '.join(sorted(docs))} on port {sys.argv[2]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

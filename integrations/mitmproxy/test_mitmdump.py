"""The addon loaded by the real mitmdump (Debian's mitmproxy package) in
reverse-proxy mode in front of a fake upstream, reporting to a fake daemon on
a unix socket.

Run: python3 -m unittest discover -s integrations/mitmproxy
Skipped when mitmdump is not installed (make test-deps installs it), unless
BOTTLECAP_REQUIRE_MITMDUMP=1. No test measures time: readiness is polled
with generous deadlines and hangs are checked by ordering.
"""

import atexit
import gzip
import http.client
import http.server
import json
import math
import os
import shutil
import socket
import socketserver
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import zlib

# No test may reach a user's daemon: whatever falls back on the environment
# (the addon's Settings, and the mitmdump and daemon processes the tests
# start) finds a home of the tests' own, never ~/.bot-bottle or the socket
# a user's shell names.
ISOLATED_HOME = tempfile.mkdtemp(prefix="bctest")
atexit.register(shutil.rmtree, ISOLATED_HOME, True)
os.environ["BOT_BOTTLE_HOME"] = ISOLATED_HOME
os.environ["BOTTLECAP_SOCKET"] = os.path.join(ISOLATED_HOME, "run", "bottlecap.sock")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..", "..")
os.environ["BOTTLECAP_NO_AUTOLOAD"] = "1"  # start_mitmdump removes it for mitmdump
sys.path.insert(0, HERE)
import bottlecap_addon as ba  # noqa: E402  the tests read its estimate and talk to the daemon with it
ADDON = os.path.join(HERE, "bottlecap_addon.py")
TESTDATA = os.path.join(HERE, "..", "..", "meter", "usage", "testdata")
MITMDUMP = shutil.which("mitmdump")
DEADLINE = 90.0  # generous: a loaded 2-core machine starts mitmdump slowly
FIELDS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")


def fixture(name):
    with open(os.path.join(TESTDATA, name), "rb") as f:
        data = f.read()
    with open(os.path.join(TESTDATA, "expected.json")) as f:
        want = next(x for x in json.load(f) if x["file"] == name)
    return data, want


def eventually(cond, what, deadline=DEADLINE):
    """Polls cond until it returns something truthy; fails naming what."""
    stop = time.monotonic() + deadline
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > stop:
            raise AssertionError("gave up waiting for " + what)
        time.sleep(0.05)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the fake upstream ----------------------------------------------------------

class Upstream(http.server.ThreadingHTTPServer):
    """Answers what each request's X-Fake header asks for; records requests."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), UpstreamHandler)
        self.seen = []  # (path, X-Fake header) of every request that reached it
        self.bodies = {}  # X-Fake name -> (headers, list of body pieces, chunked)
        self.lock = threading.Lock()

    def hits(self, path, fake):
        with self.lock:
            return sum(1 for p, f in self.seen if p == path and f == fake)


def self_signed(tmp):
    """A key and self-signed certificate for 127.0.0.1 (openssl's command line)."""
    openssl = shutil.which("openssl")
    if not openssl:
        raise unittest.SkipTest("openssl not installed: no certificate for the TLS upstream")
    pem = os.path.join(tmp, "upstream.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=upstream",
                    "-keyout", pem, "-out", pem + ".crt"], check=True, capture_output=True, timeout=DEADLINE)
    with open(pem, "ab") as out, open(pem + ".crt", "rb") as crt:
        out.write(crt.read())
    return pem


class TLSUpstream(Upstream):
    """The upstream over TLS, with the key and certificate in pem."""

    def __init__(self, pem):
        super().__init__()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pem)
        self.socket = ctx.wrap_socket(self.socket, server_side=True)


class LiveStream:
    """An event stream the upstream sends at a fixed rate, one event every
    interval, until its client goes away (or `limit` events, so that a test
    whose cut never comes fails instead of hanging)."""

    def __init__(self, events, interval=0.02, limit=3000):
        self.events, self.interval, self.limit = events, interval, limit  # events(i) -> bytes
        self.sent = 0
        self.closed = threading.Event()  # the client (mitmproxy) closed the connection
        self.finished = threading.Event()  # the stream ran to its limit

    def serve(self, handler):
        handler.send_response(200)
        handler.send_header("content-type", "text/event-stream")
        handler.send_header("transfer-encoding", "chunked")
        handler.end_headers()
        try:
            for i in range(self.limit):
                ev = self.events(i)
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(ev), ev))
                handler.wfile.flush()
                self.sent += 1
                time.sleep(self.interval)
            handler.wfile.write(b"0\r\n\r\n")
            self.finished.set()
        except OSError:
            self.closed.set()
        handler.close_connection = True


class UpstreamHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._answer()

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        self.rfile.read(n)
        self._answer()

    do_PUT = do_POST  # recorded, so a test can tell a refused PUT never came

    def _answer(self):
        with self.server.lock:
            self.server.seen.append((self.path, self.headers.get("x-fake", "")))
        if self.path == "/unrelated":
            self._send({"content-type": "text/plain"}, [b"unrelated ok"], chunked=False)
            return
        fake = self.server.bodies.get(self.headers.get("x-fake", ""))
        if isinstance(fake, LiveStream):
            fake.serve(self)
            return
        if fake is None:  # a request the test expected never to arrive
            self.send_error(418, "no such fake answer")
            return
        self._send(*fake)

    def _send(self, headers, pieces, chunked):
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        if chunked:
            self.send_header("transfer-encoding", "chunked")
        else:
            self.send_header("content-length", str(sum(len(p) for p in pieces)))
        self.end_headers()
        for p in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p) if chunked else p)
            self.wfile.flush()
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


# --- the fake daemon ------------------------------------------------------------

class Daemon(socketserver.ThreadingUnixStreamServer):
    """GET /v1/verdict answers self.verdict; POST /v1/usage records NDJSON reports."""

    daemon_threads = True

    def __init__(self, path):
        super().__init__(path, DaemonHandler)
        self.verdict = {"allowed": True}
        self.reports, self.batches, self.verdict_calls = [], [], 0
        self.lock = threading.Lock()

    def report(self, rid):
        with self.lock:
            return next((r for r in self.reports if r["id"] == rid), None)

    def reports_for(self, pred):
        with self.lock:
            return [r for r in self.reports if pred(r)]


class DaemonHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def address_string(self):
        return "unix"

    def do_GET(self):
        if not self.path.startswith("/v1/verdict?"):
            return self._json(404, {"error": "not found"})
        with self.server.lock:
            self.server.verdict_calls += 1
            v = dict(self.server.verdict)
        self._json(200, v)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path != "/v1/usage" or self.headers.get("content-type") != "application/x-ndjson":
            return self._json(400, {"error": "want NDJSON on /v1/usage"})
        batch = [json.loads(line) for line in body.splitlines() if line.strip()]
        with self.server.lock:
            self.server.batches.append(len(batch))
            self.server.reports.extend(batch)
        self._json(200, {"accepted": len(batch), "duplicates": 0, "verdicts": []})

    def _json(self, status, obj):
        b = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)


class HungDaemon:
    """A unix socket that accepts connections and never answers them."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.held, self.accepted = [], threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(c)
            self.accepted.set()

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


# --- mitmdump -------------------------------------------------------------------

def start_mitmdump(tmp, upstream_port, sock, extra_args=(), extra_env=None):
    """mitmdump with the addon: a reverse proxy to upstream_port, or a
    regular (CONNECT) proxy when it is None."""
    port = free_port()
    env = dict(os.environ, BOTTLECAP_SOCKET=sock, BOTTLECAP_BOTTLE="dev-1", BOTTLECAP_AGENT="implementer",
               BOTTLECAP_HOSTS="127.0.0.1=codex", BOTTLECAP_RETRY_SECONDS="600")
    env.update(extra_env or {})
    env.pop("BOTTLECAP_NO_AUTOLOAD", None)  # the stub tests set it in this process
    logf = open(os.path.join(tmp, "mitmdump.log"), "wb")
    mode = "regular" if upstream_port is None else "reverse:http://127.0.0.1:%d" % upstream_port
    cmd = [MITMDUMP, "--mode", mode, "-s", ADDON,
           "--listen-host", "127.0.0.1", "--listen-port", str(port), "--set", "confdir=" + os.path.join(tmp, "conf"),
           "--set", "termlog_verbosity=warn", "--set", "flow_detail=0"] + list(extra_args)
    proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    logf.close()

    def ready():
        if proc.poll() is not None:
            raise AssertionError("mitmdump exited %s:\n%s" % (proc.returncode, read_log(tmp)))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return True
        except OSError:
            return False
    try:
        eventually(ready, "mitmdump to listen")
    except BaseException:
        stop(proc)
        raise
    return proc, port


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)


def read_log(tmp):
    try:
        with open(os.path.join(tmp, "mitmdump.log"), "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]
    except OSError:
        return ""


def mitmdump_python():
    """The interpreter that runs mitmdump (it has brotli and zstandard)."""
    with open(MITMDUMP, "rb") as f:
        first = f.readline()
    return first[2:].decode().strip().split()[0] if first.startswith(b"#!") else None


def skip_without_mitmdump(cls):
    if MITMDUMP or os.environ.get("BOTTLECAP_REQUIRE_MITMDUMP") == "1":
        return cls
    return unittest.skip("mitmdump not installed (make test-deps installs Debian's mitmproxy)")(cls)


class MitmdumpCase(unittest.TestCase):
    """Starts the upstream, a daemon and mitmdump once per class. The fake
    daemon has no allowances: these classes run the addon in naive mode
    (RealDaemonTest runs it with allowances against a real daemon)."""

    MITM_ARGS = ()
    MITM_ENV = {"BOTTLECAP_ALLOWANCES": "0"}
    HUNG = False

    @classmethod
    def setUpClass(cls):
        if not MITMDUMP:
            raise AssertionError("mitmdump not found and BOTTLECAP_REQUIRE_MITMDUMP=1: apt-get install mitmproxy")
        cls.tmp = tempfile.mkdtemp(prefix="bottlecap-mitm-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        cls.upstream = Upstream()
        threading.Thread(target=cls.upstream.serve_forever, daemon=True).start()
        cls.addClassCleanup(cls.upstream.server_close)
        cls.addClassCleanup(cls.upstream.shutdown)
        sock = os.path.join(cls.tmp, "bottlecap.sock")
        if cls.HUNG:
            cls.daemon = HungDaemon(sock)
            cls.addClassCleanup(cls.daemon.close)
        else:
            cls.daemon = Daemon(sock)
            threading.Thread(target=cls.daemon.serve_forever, daemon=True).start()
            cls.addClassCleanup(cls.daemon.server_close)
            cls.addClassCleanup(cls.daemon.shutdown)
        cls.proc, cls.port = start_mitmdump(cls.tmp, cls.upstream.server_address[1], sock, cls.MITM_ARGS, cls.MITM_ENV)
        cls.addClassCleanup(stop, cls.proc)

    def setUp(self):
        if not self.HUNG:
            with self.daemon.lock:
                self.daemon.verdict = {"allowed": True, "scope": "bottle", "scope_id": "dev-1", "provider": "codex",
                                       "limit": 1000000, "used": 0, "remaining": 1000000, "state": "active", "reason": ""}

    def fail_with_log(self, msg):
        self.fail("%s\nmitmdump log:\n%s" % (msg, read_log(self.tmp)))

    def call(self, method, path, body=None, headers=None, timeout=DEADLINE):
        """One request through mitmdump: (status, headers, raw body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def serve(self, name, headers, pieces, chunked=True):
        self.upstream.bodies[name] = (headers, pieces, chunked)

    def assert_counted(self, rid, want):
        got = eventually(lambda: self.daemon.report(rid), "report %s at the daemon" % rid)
        for k in FIELDS:
            self.assertEqual(got[k], want[k], "%s: %s" % (rid, k))
        self.assertTrue(got["complete"], got)
        self.assertEqual((got["bottle"], got["agent"], got["provider"]), ("dev-1", "implementer", "codex"))
        return got


def sse_id(data):
    """The chat completion id in an OpenAI SSE fixture."""
    for line in data.decode().splitlines():
        if line.startswith("data: {"):
            return json.loads(line[6:])["id"]
    raise AssertionError("no id")


@skip_without_mitmdump
class GateAndDecodeTest(MitmdumpCase):
    # One unmetered call let through by name (the others stay refused).
    MITM_ENV = dict(MitmdumpCase.MITM_ENV, BOTTLECAP_PASS_UNMETERED="/v1/embeddings")

    def test_denied_call_is_429_not_retried_in_provider_shape(self):
        with self.daemon.lock:
            self.daemon.verdict = {"allowed": False, "scope": "bottle", "scope_id": "dev-1", "provider": "codex",
                                   "limit": 100, "used": 120, "remaining": 0, "state": "cut_off",
                                   "reason": "bottle dev-1 budget exhausted (codex 120/100)"}
        status, headers, raw = self.call("POST", "/v1/chat/completions", b'{"model":"m","messages":[]}',
                                         {"content-type": "application/json", "x-fake": "denied"})
        self.assertEqual(status, 429, raw)
        self.assertEqual(headers.get("x-should-retry"), "false")
        err = json.loads(raw)["error"]
        self.assertEqual((err["type"], err["code"]), ("insufficient_quota", "insufficient_quota"))
        for part in ("scope bottle dev-1", "provider codex", "limit 100", "used 120", "budget exhausted"):
            self.assertIn(part, err["message"])
        self.assertEqual(self.upstream.hits("/v1/chat/completions", "denied"), 0, "a denied call reached the upstream")

    def test_websocket_upgrade_refused_with_426(self):
        ws = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
              "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "x-fake": "ws"}
        for path in ("/v1/responses", "/backend-api/codex/responses", "/v1/realtime"):
            status, headers, raw = self.call("GET", path, headers=ws)
            self.assertEqual(status, 426, (path, raw))
            self.assertEqual(headers.get("x-should-retry"), "false", path)
            self.assertIn("upgrade", json.loads(raw)["error"]["message"].lower())
            self.assertEqual(self.upstream.hits(path, "ws"), 0, "%s: the upgrade reached the upstream" % path)

    def test_gzip_sse_counted_and_passed_unchanged(self):
        data, want = fixture("openai-chat-stream-include-usage.sse")
        # gzip members flushed as the stream goes, as a compressing server does
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        pieces = [c.compress(data[i:i + 300]) + c.flush(zlib.Z_SYNC_FLUSH) for i in range(0, len(data), 300)]
        pieces.append(c.flush())
        self.serve("gzip-sse", {"content-type": "text/event-stream", "content-encoding": "gzip"}, pieces)
        status, headers, raw = self.call("POST", "/v1/chat/completions", b'{"model":"m","stream":true}',
                                         {"x-fake": "gzip-sse"})
        self.assertEqual(status, 200)
        self.assertEqual(raw, b"".join(pieces), "the client did not get the upstream's bytes unchanged")
        self.assertEqual(gzip.decompress(raw), data)
        self.assert_counted(sse_id(data), want)

    def test_brotli_and_zstd_sse_counted(self):
        data, want = fixture("openai-chat-stream-include-usage.sse")
        py = mitmdump_python()
        script = ("import sys, brotli, zstandard; d = sys.stdin.buffer.read(); "
                  "sys.stdout.buffer.write(brotli.compress(d) if sys.argv[1] == 'br' else zstandard.ZstdCompressor().compress(d))")
        for enc in ("br", "zstd"):
            body = data.replace(b"chatcmpl-", ("chatcmpl-%s-" % enc).encode())
            try:
                packed = subprocess.run([py, "-c", script, enc], input=body, capture_output=True, check=True,
                                        timeout=DEADLINE).stdout
            except (OSError, subprocess.SubprocessError, TypeError) as err:
                self.skipTest("cannot compress %s with mitmdump's python: %s" % (enc, err))
            pieces = [packed[i:i + 97] for i in range(0, len(packed), 97)]
            self.serve(enc, {"content-type": "text/event-stream", "content-encoding": enc}, pieces)
            status, _, raw = self.call("POST", "/v1/chat/completions", b'{"stream":true}', {"x-fake": enc})
            self.assertEqual((status, raw), (200, packed), enc)
            self.assert_counted(sse_id(body), want)

    def test_chatgpt_codex_stream_counted(self):
        """Codex signed in with ChatGPT posts the Responses format to the
        ChatGPT backend's path: metered like the API's, its bytes unchanged."""
        data, want = fixture("openai-responses-stream-reasoning.sse")
        self.serve("chatgpt-sse", {"content-type": "text/event-stream"}, [data[i:i + 500] for i in range(0, len(data), 500)])
        status, _, raw = self.call("POST", "/backend-api/codex/responses", b'{"model":"gpt-5","stream":true,"input":"hi"}',
                                   {"content-type": "application/json", "chatgpt-account-id": "acct-1",
                                    "x-fake": "chatgpt-sse"})
        self.assertEqual((status, raw), (200, data))
        first = next(line for line in data.decode().splitlines() if line.startswith("data: {"))
        self.assert_counted(json.loads(first[6:])["response"]["id"], want)
        self.assertEqual(self.upstream.hits("/backend-api/codex/responses", "chatgpt-sse"), 1)

    def test_chatgpt_codex_denied_as_usage_limit(self):
        """A denial on the ChatGPT backend's path is the backend's own 429
        (usage_limit_reached, which Codex shows as a usage limit), naming
        the budget, and never reaches the upstream."""
        with self.daemon.lock:
            self.daemon.verdict = {"allowed": False, "scope": "bottle", "scope_id": "dev-1", "provider": "codex",
                                   "limit": 100, "used": 120, "remaining": 0, "state": "active",
                                   "reason": "bottle dev-1 budget exhausted (codex 120/100)"}
        status, headers, raw = self.call("POST", "/backend-api/codex/responses", b'{"model":"gpt-5","input":"hi"}',
                                         {"content-type": "application/json", "x-fake": "chatgpt-denied"})
        self.assertEqual(status, 429, raw)
        self.assertEqual(headers.get("x-should-retry"), "false")
        err = json.loads(raw)["error"]
        self.assertEqual((err["type"], err["code"]), ("usage_limit_reached", "insufficient_quota"))
        for part in ("scope bottle dev-1", "provider codex", "limit 100", "used 120"):
            self.assertIn(part, err["message"])
        self.assertEqual(self.upstream.hits("/backend-api/codex/responses", "chatgpt-denied"), 0)

    def test_compaction_counted_on_both_codex_paths(self):
        """Remote compaction (API key and ChatGPT login) is metered like a
        generation call: its JSON passes unchanged and is reported with
        the compaction's usage, under the request's model."""
        data, want = fixture("openai-responses-compact.json")
        for path in ("/v1/responses/compact", "/backend-api/codex/responses/compact"):
            rid = "resp_cmp_" + path.split("/")[1].replace("-", "_")
            served = data.replace(b'"resp_001"', ('"%s"' % rid).encode())
            self.serve(rid, {"content-type": "application/json"}, [served], chunked=False)
            status, _, raw = self.call("POST", path, b'{"model":"gpt-5.1-codex-max","input":"hi"}',
                                       {"content-type": "application/json", "x-fake": rid})
            self.assertEqual((status, raw), (200, served), path)
            got = self.assert_counted(rid, want)
            self.assertEqual(got["model"], "gpt-5.1-codex-max", path)
            self.assertEqual(self.upstream.hits(path, rid), 1, path)

    def test_compaction_denied_in_each_paths_shape(self):
        with self.daemon.lock:
            self.daemon.verdict = {"allowed": False, "scope": "bottle", "scope_id": "dev-1", "provider": "codex",
                                   "limit": 100, "used": 120, "remaining": 0, "state": "active",
                                   "reason": "bottle dev-1 budget exhausted (codex 120/100)"}
        for path, kind in (("/v1/responses/compact", "insufficient_quota"),
                           ("/backend-api/codex/responses/compact", "usage_limit_reached")):
            status, headers, raw = self.call("POST", path, b'{"model":"gpt-5","input":"hi"}',
                                             {"content-type": "application/json", "x-fake": "compact-denied"})
            self.assertEqual((status, headers.get("x-should-retry")), (429, "false"), raw)
            err = json.loads(raw)["error"]
            self.assertEqual(err["type"], kind, path)
            self.assertIn("limit 100", err["message"])
            self.assertEqual(self.upstream.hits(path, "compact-denied"), 0, path)

    def test_unmetered_calls_refused_403(self):
        """A call that spends tokens bottlecap does not meter is refused
        before the upstream, in the provider's shape, saying so; one the
        operator passed (BOTTLECAP_PASS_UNMETERED) and the calls that spend
        nothing go on."""
        for path in ("/v1/batches", "/v1/threads/thread_1/runs", "/v1//images/generations",
                     "/backend-api/wham/tasks", "/backend-api/codex/memories/trace_summarize"):
            status, headers, raw = self.call("POST", path, b'{"model":"m"}',
                                             {"content-type": "application/json", "x-fake": "unmetered"})
            self.assertEqual((status, headers.get("x-should-retry")), (403, "false"), (path, raw))
            err = json.loads(raw)["error"]
            self.assertEqual((err["type"], err["code"]), ("invalid_request_error", "endpoint_not_metered"), path)
            for part in ("does not meter", "budget cannot see", "BOTTLECAP_PASS_UNMETERED="):
                self.assertIn(part, err["message"], path)
            self.assertEqual(self.upstream.hits(path, "unmetered"), 0, "%s reached the upstream" % path)
        self.serve("spends-nothing", {"content-type": "application/json"}, [b'{"data":[]}'], chunked=False)
        for method, path in (("POST", "/v1/embeddings"), ("GET", "/v1/batches"), ("POST", "/v1/batches/batch_1/cancel"),
                             ("POST", "/v1/responses/input_tokens"), ("GET", "/backend-api/codex/models")):
            status, _, raw = self.call(method, path, b'{"model":"m","input":"hi"}' if method == "POST" else None,
                                       {"content-type": "application/json", "x-fake": "spends-nothing"})
            self.assertEqual((status, raw), (200, b'{"data":[]}'), (method, path))
            self.assertEqual(self.upstream.hits(path, "spends-nothing"), 1, (method, path))

    def test_plain_json_body_counted(self):
        data, want = fixture("openai-chat-nonstream.json")
        self.serve("json", {"content-type": "application/json"}, [data], chunked=False)
        status, _, raw = self.call("POST", "/v1/chat/completions", b'{"model":"m"}', {"x-fake": "json"})
        self.assertEqual((status, raw), (200, data))
        self.assert_counted(json.loads(data)["id"], want)

    def test_reports_sent_as_ndjson_batches(self):
        # every report so far reached the fake daemon as NDJSON (it refuses
        # anything else with 400, which the addon would have dropped)
        data, want = fixture("openai-chat-nonstream-2024.json")
        self.serve("json-2024", {"content-type": "application/json"}, [data], chunked=False)
        self.call("POST", "/v1/chat/completions", b"{}", {"x-fake": "json-2024"})
        self.assert_counted(json.loads(data)["id"], want)
        with self.daemon.lock:
            self.assertTrue(self.daemon.batches and all(n >= 1 for n in self.daemon.batches))


@skip_without_mitmdump
class PathsAndHostsTest(MitmdumpCase):
    """Requests name their provider host in Host (keep_host_header), so the
    addon's default hosts apply: generation calls under odd spellings,
    Gemini CLI's Code Assist call, and the methods that cannot generate."""

    MITM_ARGS = ("--set", "keep_host_header=true")

    def post_as(self, host, path, rid, data, content_type="application/json", method="POST"):
        self.serve(rid, {"content-type": content_type}, [data], chunked=content_type == "text/event-stream")
        return self.call(method, path, b'{"model":"m","messages":[{"role":"user","content":"hi"}]}',
                         {"host": host, "content-type": "application/json", "x-fake": rid})

    def test_odd_spellings_metered_and_sent_on_as_spelled(self):
        """Sent under a spelling the upstream may fold to the call, a
        generation call is metered (its usage reported) and reaches the
        upstream as the table spells the call, its query kept."""
        data, want = fixture("anthropic-messages-nonstream.json")
        rdata, rwant = fixture("openai-responses-nonstream.json")
        old_msg, old_resp = json.loads(data)["id"], json.loads(rdata)["id"]
        cases = (("api.anthropic.com", "//v1/messages", "/v1/messages", data, old_msg, want, "claude"),
                 ("api.anthropic.com", "/v1/messages%2F", "/v1/messages", data, old_msg, want, "claude"),
                 ("api.anthropic.com", "/v1/./messages;x=1", "/v1/messages", data, old_msg, want, "claude"),
                 ("api.anthropic.com", "/v1/messages?beta=true", "/v1/messages?beta=true", data, old_msg, want, "claude"),
                 ("api.openai.com", "/v1/responses/", "/v1/responses", rdata, old_resp, rwant, "codex"))
        for i, (host, path, sent_on, raw, old_id, fx, provider) in enumerate(cases):
            rid = "spelling_%d" % i
            served = raw.replace(old_id.encode(), rid.encode())
            status, _, got = self.post_as(host, path, rid, served)
            self.assertEqual((status, got), (200, served), path)
            self.assertEqual(self.upstream.hits(sent_on, rid), 1, "%s: the upstream saw %s" % (path, self.upstream.seen[-1]))
            report = eventually(lambda: self.daemon.report(rid), "report %s at the daemon" % rid)
            self.assertEqual((report["provider"], report["host"]), (provider, host), path)
            for k in FIELDS:
                self.assertEqual(report[k], fx[k], (path, k))

    def test_code_assist_metered_from_its_host(self):
        """Gemini CLI signed in with Google: a stream from Code Assist, its
        usage inside "response", is reported for the gemini provider."""
        data, want = fixture("gemini-streamgeneratecontent.sse")
        events = [e for e in data.decode().replace("\r\n", "\n").split("\n\n") if e.strip()]
        wrapped = "".join("data: %s\r\n\r\n" % json.dumps({"response": json.loads(e.strip()[5:]), "traceId": "tr-1"})
                          for e in events).encode()
        path = "/v1internal:streamGenerateContent?alt=sse"
        status, _, got = self.post_as("cloudcode-pa.googleapis.com", path, "code-assist", wrapped, "text/event-stream")
        self.assertEqual((status, got), (200, wrapped))
        rid = json.loads(events[0].strip()[5:])["responseId"]
        report = eventually(lambda: self.daemon.report(rid), "the Code Assist report at the daemon")
        self.assertEqual((report["provider"], report["host"], report["complete"]), ("gemini", "cloudcode-pa.googleapis.com", True))
        for k in FIELDS:
            self.assertEqual(report[k], want[k], k)

    def test_only_post_generates(self):
        """A PUT to a generation endpoint is refused (403, the API's shape)
        before the upstream; a bodiless GET of one goes on, unmetered."""
        status, headers, raw = self.post_as("api.anthropic.com", "/v1/messages", "put-msg", b"{}", method="PUT")
        self.assertEqual((status, headers.get("x-should-retry")), (403, "false"), raw)
        self.assertEqual(json.loads(raw)["error"]["type"], "permission_error")
        self.assertEqual(self.upstream.hits("/v1/messages", "put-msg"), 0)
        self.serve("list-chat", {"content-type": "application/json"}, [b'{"data":[]}'], chunked=False)
        status, _, raw = self.call("GET", "/v1/chat/completions", None, {"host": "api.openai.com", "x-fake": "list-chat"})
        self.assertEqual((status, raw), (200, b'{"data":[]}'))
        self.assertEqual(self.upstream.hits("/v1/chat/completions", "list-chat"), 1)

    def test_unreadable_gemini_answer_refused(self):
        """A Gemini generation call asking for protocol buffers is refused
        (403) before the upstream."""
        path = "/v1beta/models/gemini-2.5-flash:generateContent?alt=proto"
        status, _, raw = self.post_as("generativelanguage.googleapis.com", path, "proto", b"{}")
        self.assertEqual(status, 403, raw)
        self.assertEqual(json.loads(raw)["error"]["status"], "PERMISSION_DENIED")
        self.assertEqual(self.upstream.hits(path, "proto"), 0)


@skip_without_mitmdump
class StreamLargeBodiesTest(MitmdumpCase):
    """mitmproxy streams bodies over 1 KiB itself: flow.response.content is None."""

    MITM_ARGS = ("--set", "stream_large_bodies=1k")

    def test_json_with_content_length_counted(self):
        data, want = fixture("openai-chat-nonstream.json")
        self.assertGreater(len(data), 1024)
        self.serve("cl", {"content-type": "application/json"}, [data], chunked=False)
        status, _, raw = self.call("POST", "/v1/chat/completions", b"{}", {"x-fake": "cl"})
        self.assertEqual((status, raw), (200, data))
        self.assert_counted(json.loads(data)["id"], want)

    def test_chunked_json_counted(self):
        data, want = fixture("openai-responses-nonstream.json")
        self.assertGreater(len(data), 1024)
        pieces = [data[i:i + 700] for i in range(0, len(data), 700)]
        self.serve("chunked", {"content-type": "application/json"}, pieces)
        status, _, raw = self.call("POST", "/v1/responses", b"{}", {"x-fake": "chunked"})
        self.assertEqual((status, raw), (200, data))
        self.assert_counted(json.loads(data)["id"], want)

    def test_denied_streamed_request_body_never_reaches_upstream(self):
        with self.daemon.lock:
            self.daemon.verdict = {"allowed": False, "scope": "global", "scope_id": "-", "provider": "codex",
                                   "limit": 1, "used": 1, "reason": "global budget exhausted"}
        big = json.dumps({"model": "m", "input": "x" * 4096}).encode()  # mitmproxy streams it upstream
        try:
            status, _, _ = self.call("POST", "/v1/responses", big, {"content-type": "application/json",
                                                                    "x-fake": "denied-big"})
        except (OSError, http.client.HTTPException):
            status = None  # killed: closed without an answer
        self.assertNotEqual(status, 200)
        self.assertEqual(self.upstream.hits("/v1/responses", "denied-big"), 0, "a denied streamed request reached the upstream")

    def test_gzip_json_counted(self):
        data, want = fixture("openai-chat-nonstream.json")
        obj = json.loads(data)
        obj["id"] += "-gz"
        obj["padding"] = os.urandom(2048).hex()  # stays over 1 KiB once compressed
        packed = gzip.compress(json.dumps(obj).encode())
        self.assertGreater(len(packed), 1024)
        self.serve("gz", {"content-type": "application/json", "content-encoding": "gzip"}, [packed], chunked=False)
        status, _, raw = self.call("POST", "/v1/chat/completions", b"{}", {"x-fake": "gz"})
        self.assertEqual((status, raw), (200, packed))
        self.assert_counted(obj["id"], want)


@skip_without_mitmdump
class HungDaemonTest(MitmdumpCase):
    """The daemon accepts the gate's connection and never answers."""

    HUNG = True
    MITM_ENV = {"BOTTLECAP_GATE_TIMEOUT": "600", "BOTTLECAP_ALLOWANCES": "0"}  # the gate waits for as long as the test runs

    def test_unrelated_flow_not_stalled_by_hanging_gate(self):
        result = {}

        def metered():
            try:
                result["metered"] = self.call("POST", "/v1/chat/completions", b"{}", {"x-fake": "hung"})
            except Exception as err:  # reported below
                result["metered"] = err
        t = threading.Thread(target=metered, daemon=True)
        t.start()
        if not self.daemon.accepted.wait(DEADLINE):
            self.fail_with_log("the gate never connected to the daemon")
        status, _, raw = self.call("GET", "/unrelated")
        self.assertEqual((status, raw), (200, b"unrelated ok"))
        # Ordering, not timing: the unrelated flow finished while the gate's
        # question is still unanswered (the daemon has not replied at all).
        self.assertTrue(t.is_alive(), "the metered request finished before the daemon answered: %r" % result)
        self.assertNotIn("metered", result)
        # The daemon goes away: the gate fails closed, not retryable.
        self.daemon.close()
        t.join(DEADLINE)
        got = result.get("metered")
        if not isinstance(got, tuple):
            self.fail_with_log("metered request: %r" % (got,))
        status, headers, raw = got
        self.assertEqual(status, 503, raw)
        self.assertEqual(headers.get("x-should-retry"), "false")
        self.assertIn("fail-closed", json.loads(raw)["error"]["message"])
        self.assertEqual(self.upstream.hits("/v1/chat/completions", "hung"), 0)


# --- a real daemon ----------------------------------------------------------------

def bottlecap_binary(tmp):
    """The daemon to test against: $BOTTLECAP_BIN, else `bottlecap` built
    from this repository (None without go)."""
    if os.environ.get("BOTTLECAP_BIN"):
        return os.environ["BOTTLECAP_BIN"]
    go = shutil.which("go")
    if not go:
        return None
    out = os.path.join(tmp, "bottlecap")
    subprocess.run([go, "build", "-o", out, "./cmd/bottlecap"], cwd=REPO, check=True, timeout=900,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return out


class RealDaemon:
    """`bottlecap serve` on a socket and ledger in tmp, Docker off (actions
    are journaled and stay pending: the bottle's state is `pending`, which
    the addon treats as leaving active)."""

    def __init__(self, tmp, binary, settings):
        self.home = os.path.join(tmp, "home")
        os.makedirs(os.path.join(self.home, "run"))
        self.sock = os.path.join(self.home, "run", "bottlecap.sock")
        self.db = os.path.join(self.home, "bot-bottle.db")
        with open(os.path.join(self.home, "settings.yml"), "w") as f:
            f.write(settings)
        self.log = os.path.join(tmp, "daemon.log")
        with open(self.log, "wb") as logf:
            self.proc = subprocess.Popen(
                [binary, "serve", "--socket", self.sock, "--db", self.db, "--docker=false", "--log-level", "warn",
                 "--settings", os.path.join(self.home, "settings.yml")],
                env=dict(os.environ, BOT_BOTTLE_HOME=self.home), stdout=logf, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("bottlecap serve exited %s:\n%s" % (self.proc.returncode, self.read_log()))
            try:
                return self.api("GET", "/v1/status")[0] == 200
            except OSError:
                return False
        eventually(up, "the daemon to answer")

    def api(self, method, path, body=None):
        return ba.call(self.sock, method, path, body, timeout=30)

    def read_log(self):
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def reports(self, bottle):
        """The ledger's reports of a bottle (read-only, as the dashboard reads it)."""
        db = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=30)
        try:
            rows = db.execute("SELECT id, input, cache_read, output, complete, counted FROM reports WHERE bottle = ?",
                              (bottle,)).fetchall()
        finally:
            db.close()
        return [dict(zip(("id", "input", "cache_read", "output", "complete", "counted"), r)) for r in rows]

    def stop(self):
        stop(self.proc)


def chat_deltas(rid):
    """The events of a Chat stream whose id is rid: 'tok ' each (4 bytes, one token)."""
    def event(i):
        return (b'data: {"id":"%s","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
                b'"delta":{"content":"tok "}}]}\n\n' % rid.encode())
    return event


def fresh_estimate(body):
    """What a new addon estimates a Chat request body at."""
    return ba.Estimator().estimate("codex", ba.CHAT, "/v1/chat/completions", body).tokens


def big_delta(i):
    """Event i of a Chat stream: 300 bytes of text."""
    return (b'data: {"id":"chatcmpl-big","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
            b'"delta":{"content":"' + b"x" * 300 + b'"}}]}\n\n')


def read_events(resp, until=None):
    """Reads a streamed response's server-sent events until it ends (or
    until(events) says stop); returns (events' data lines, raw bytes,
    whether it ended cleanly)."""
    raw, events = b"", []
    try:
        while True:
            chunk = resp.read1(65536)
            if not chunk:
                return events, raw, True
            raw += chunk
            events = [e for e in raw.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]
            if until and until(events):
                return events, raw, None
    except (http.client.IncompleteRead, OSError):
        return events, raw, False


@unittest.skipUnless(MITMDUMP or os.environ.get("BOTTLECAP_REQUIRE_MITMDUMP") == "1", "mitmdump not installed")
class RealDaemonTest(unittest.TestCase):
    """The addon with allowances in the real mitmdump, against a real daemon
    (built from this repository) and a fake upstream."""

    @classmethod
    def setUpClass(cls):
        if not MITMDUMP:
            raise AssertionError("mitmdump not found and BOTTLECAP_REQUIRE_MITMDUMP=1: apt-get install mitmproxy")
        cls.tmp = tempfile.mkdtemp(prefix="bottlecap-real-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        binary = bottlecap_binary(cls.tmp)
        if binary is None:
            if os.environ.get("BOTTLECAP_REQUIRE_MITMDUMP") == "1":
                raise AssertionError("go not found: cannot build the daemon (or set BOTTLECAP_BIN)")
            raise unittest.SkipTest("go not found: cannot build the daemon (set BOTTLECAP_BIN)")
        cls.upstream = Upstream()
        threading.Thread(target=cls.upstream.serve_forever, daemon=True).start()
        cls.addClassCleanup(cls.upstream.server_close)
        cls.addClassCleanup(cls.upstream.shutdown)
        cls.daemon = RealDaemon(cls.tmp, binary, "allowance_ttl: 3s\n")
        cls.addClassCleanup(cls.daemon.stop)

    def mitmdump(self, bottle, budget, regular=False):
        """A bottle with a codex budget, and a mitmdump metering it (a
        reverse proxy to the upstream, or a regular proxy)."""
        status, reply = self.daemon.api("PUT", "/v1/bottles/" + bottle,
                                        {"agent": "implementer", "budget": {"codex": budget}})
        self.assertIn(status, (200, 201), reply)
        tmp = tempfile.mkdtemp(prefix=bottle + "-", dir=self.tmp)
        proc, port = start_mitmdump(tmp, None if regular else self.upstream.server_address[1], self.daemon.sock,
                                    extra_args=("--set", "ssl_insecure=true") if regular else (),
                                    extra_env={"BOTTLECAP_BOTTLE": bottle})
        self.addCleanup(stop, proc)
        self.tmp_mitm = tmp
        return port

    def post(self, port, body, fake):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
        self.addCleanup(conn.close)
        conn.request("POST", "/v1/chat/completions", body=body,
                     headers={"content-type": "application/json", "x-fake": fake})
        return conn.getresponse()

    def fail_with_logs(self, msg):
        self.fail("%s\nmitmdump log:\n%s\ndaemon log:\n%s" % (msg, read_log(self.tmp_mitm), self.daemon.read_log()))

    def held(self, bottle):
        return self.daemon.api("GET", "/v1/bottles/" + bottle)[1].get("held", {}).get("codex", 0)

    def test_preflight_refusal_never_reaches_the_upstream(self):
        port = self.mitmdump("pre-1", 5000)
        body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "x" * 30000}]}).encode()
        resp = self.post(port, body, "preflight")
        raw = resp.read()
        self.assertEqual(resp.status, 429, raw)
        self.assertEqual(resp.getheader("x-should-retry"), "false")
        msg = json.loads(raw)["error"]["message"]
        est = fresh_estimate(body)
        for part in ("pre-1", "limit 5000", "held ", "remaining ", "estimated at %d" % est):
            self.assertIn(part, msg)
        self.assertEqual(self.upstream.hits("/v1/chat/completions", "preflight"), 0, "a refused request reached the upstream")
        self.assertEqual(self.daemon.reports("pre-1"), [])

    def test_compaction_metered_against_the_real_daemon(self):
        """Codex's remote compaction on its ChatGPT path, with allowances:
        admitted, passed unchanged and in the ledger with its usage."""
        port = self.mitmdump("cmp-1", 1000000)
        data, want = fixture("openai-responses-compact.json")
        self.upstream.bodies["compact"] = ({"content-type": "application/json"}, [data], False)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
        self.addCleanup(conn.close)
        conn.request("POST", "/backend-api/codex/responses/compact", body=b'{"model":"gpt-5.1-codex-max","input":"hi"}',
                     headers={"content-type": "application/json", "x-fake": "compact"})
        resp = conn.getresponse()
        self.assertEqual((resp.status, resp.read()), (200, data))
        got = eventually(lambda: self.daemon.reports("cmp-1"), "the compaction in the ledger")
        self.assertEqual([(r["id"], r["input"], r["output"], r["complete"]) for r in got],
                         [("resp_001", want["input_tokens"], want["output_tokens"], 1)])

    def test_operator_cutoff_ends_a_live_stream(self):
        port = self.mitmdump("cut-1", 1000000)
        live = LiveStream(chat_deltas("chatcmpl-cut-1"))
        self.upstream.bodies["live"] = live
        self.cut_live("cut-1", lambda body: self.post(port, body, "live"), live)

    def test_operator_cutoff_through_connect_and_tls(self):
        """Regular mode, as an egress runs it: the client tunnels with
        CONNECT and trusts mitmproxy's CA, the upstream speaks TLS. The cut
        must find the HTTP layer inside the tunnel."""
        port = self.mitmdump("tls-1", 1000000, regular=True)
        conf = os.path.join(self.tmp_mitm, "conf")
        upstream = TLSUpstream(self_signed(self.tmp_mitm))  # mitmproxy does not check it: ssl_insecure
        threading.Thread(target=upstream.serve_forever, daemon=True).start()
        self.addCleanup(upstream.server_close)
        self.addCleanup(upstream.shutdown)
        live = LiveStream(chat_deltas("chatcmpl-tls-1"))
        upstream.bodies["live"] = live

        def post(body):
            ctx = ssl.create_default_context(cafile=os.path.join(conf, "mitmproxy-ca-cert.pem"))
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=DEADLINE)
            conn.set_tunnel("127.0.0.1", upstream.server_address[1])
            self.addCleanup(conn.close)
            conn.request("POST", "/v1/chat/completions", body=body, headers={"content-type": "application/json",
                                                                              "x-fake": "live"})
            return conn.getresponse()
        self.cut_live("tls-1", post, live)

    def cut_live(self, bottle, post, live):
        """An operator cuts the bottle off while its stream passes: the client
        gets the error event after the last whole event and a clean end,
        the upstream's connection is closed, and the ledger holds the
        partial usage (input estimated, output no less than passed)."""
        body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "y" * 3000}]}).encode()
        resp = post(body)
        self.assertEqual(resp.status, 200)
        before, _, _ = read_events(resp, until=lambda evs: len(evs) >= 5)
        if len(before) < 5:
            self.fail_with_logs("the stream ended before the cutoff: %r" % before)
        status, reply = self.daemon.api("POST", "/v1/bottles/%s/actions" % bottle, {"action": "cutoff", "reason": "test cutoff"})
        self.assertIn(status, (200, 202), reply)
        events, raw, clean = read_events(resp)
        events = before + events
        if not events or b'"error"' not in events[-1]:
            self.fail_with_logs("the client got no error event; last events: %r" % events[-3:])
        self.assertTrue(clean, "the response did not end cleanly after its error event")
        err = json.loads(events[-1].split(b"data: ", 1)[1])["error"]
        self.assertEqual(err["code"], "insufficient_quota")
        self.assertIn("bottle %s is" % bottle, err["message"])
        self.assertTrue(all(e.startswith(b"data: {\"id\":\"chatcmpl-" + bottle.encode()) for e in events[:-1]), events[-3:])
        if not live.closed.wait(DEADLINE):
            self.fail_with_logs("the upstream connection was not closed (%d events sent)" % live.sent)
        deltas = len(events) - 1
        got = eventually(lambda: self.daemon.reports(bottle), "the cut stream's report in the ledger")
        self.assertEqual(len(got), 1, got)
        r = got[0]
        self.assertEqual(r["complete"], 0, r)
        self.assertGreaterEqual(r["output"], deltas, "less output than passed to the client")
        self.assertEqual(r["input"], fresh_estimate(body), "input is not the estimate")
        eventually(lambda: self.held(bottle) == 0, "the allowance to be released")

    def test_operator_cutoff_ends_a_chatgpt_codex_stream(self):
        """Codex signed in with ChatGPT, with allowances against the real
        daemon: its Responses stream on the ChatGPT backend's path is cut
        with response.failed (code insufficient_quota, which Codex does
        not retry), the upstream closed, the partial usage in the ledger."""
        port = self.mitmdump("gpt-cut-1", 1000000)

        def event(i):
            return (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":%d,'
                    b'"item_id":"msg_1","output_index":0,"content_index":0,"delta":"tok "}\n\n' % (i + 1))
        created = (b'event: response.created\ndata: {"type":"response.created","sequence_number":0,"response":'
                   b'{"id":"resp_gpt_cut_1","object":"response","status":"in_progress","model":"gpt-5","usage":null}}\n\n')
        live = LiveStream(lambda i: created if i == 0 else event(i))
        self.upstream.bodies["gpt-live"] = live
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
        self.addCleanup(conn.close)
        conn.request("POST", "/backend-api/codex/responses", body=b'{"model":"gpt-5","stream":true,"input":"hi"}',
                     headers={"content-type": "application/json", "x-fake": "gpt-live"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        before, _, _ = read_events(resp, until=lambda evs: len(evs) >= 5)
        if len(before) < 5:
            self.fail_with_logs("the stream ended before the cutoff: %r" % before)
        status, reply = self.daemon.api("POST", "/v1/bottles/gpt-cut-1/actions", {"action": "cutoff", "reason": "test cutoff"})
        self.assertIn(status, (200, 202), reply)
        events, _, clean = read_events(resp)
        events = before + events
        if not events or not events[-1].startswith(b"event: response.failed\n"):
            self.fail_with_logs("the client got no response.failed; last events: %r" % events[-3:])
        self.assertTrue(clean, "the response did not end cleanly after its error event")
        failed = json.loads(events[-1].split(b"data: ", 1)[1])
        self.assertEqual(failed["response"]["error"]["code"], "insufficient_quota")
        self.assertEqual(failed["response"]["id"], "resp_gpt_cut_1")
        self.assertEqual(failed["error"]["type"], "usage_limit_reached")
        self.assertIn("bottle gpt-cut-1 is", failed["error"]["message"])
        if not live.closed.wait(DEADLINE):
            self.fail_with_logs("the upstream connection was not closed (%d events sent)" % live.sent)
        r = eventually(lambda: self.daemon.reports("gpt-cut-1"), "the cut stream's report in the ledger")[0]
        self.assertEqual((r["id"], r["complete"]), ("resp_gpt_cut_1", 0), r)
        self.assertGreaterEqual(r["output"], len(events) - 2, "less output than passed to the client")

    def test_capped_request_fits_a_small_budget_and_is_cut_past_its_cap(self):
        """With 1,000 tokens left a Chat request without a cap is refused
        (its estimate and a whole output slice); the same stating
        max_completion_tokens 200 is admitted, and when its upstream streams
        on past what 200 tokens can hold, the stream is cut, saying so."""
        port = self.mitmdump("cap-1", 1000)
        plain = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        resp = self.post(port, json.dumps(plain).encode(), "capped")
        raw = resp.read()
        self.assertEqual(resp.status, 429, raw)
        self.assertIn("%d for its output" % ba.OUTPUT_SLICE, json.loads(raw)["error"]["message"])
        self.assertEqual(self.upstream.hits("/v1/chat/completions", "capped"), 0, "the refused request reached the upstream")

        def event(i):  # 100 bytes of text
            return (b'data: {"id":"chatcmpl-cap-1","object":"chat.completion.chunk","model":"m","choices":[{"index":0,'
                    b'"delta":{"content":"' + b"tok " * 25 + b'"}}]}\n\n')
        live = LiveStream(event)
        self.upstream.bodies["capped"] = live
        resp = self.post(port, json.dumps(dict(plain, max_completion_tokens=200)).encode(), "capped")
        self.assertEqual(resp.status, 200)
        events, _, clean = read_events(resp)
        if not events or b'"error"' not in events[-1]:
            self.fail_with_logs("the client got no error event; last events: %r" % events[-3:])
        self.assertTrue(clean, "the response did not end cleanly after its error event")
        self.assertIn("output cap the request states (200 tokens)", json.loads(events[-1].split(b"data: ", 1)[1])["error"]["message"])
        bound = 200 * ba.CAP_BYTES_PER_TOKEN + ba.CAP_SLACK_BYTES
        self.assertEqual(len(events) - 1, bound // 100, "cut elsewhere than at the first event past the bound")
        if not live.closed.wait(DEADLINE):
            self.fail_with_logs("the upstream connection was not closed (%d events sent)" % live.sent)
        r = eventually(lambda: self.daemon.reports("cap-1"), "the cut stream's report in the ledger")[0]
        self.assertEqual(r["complete"], 0, r)
        self.assertGreaterEqual(r["output"], ba.output_tokens(ba.CHAT, "m", (len(events) - 1) * 100), r)

    def test_stream_ends_where_the_budget_does(self):
        body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "z" * 3000}]}).encode()
        limit = fresh_estimate(body) + ba.OUTPUT_SLICE + 2000
        port = self.mitmdump("out-1", limit)
        live = LiveStream(big_delta)
        self.upstream.bodies["big"] = live
        resp = self.post(port, body, "big")
        self.assertEqual(resp.status, 200)
        events, _, clean = read_events(resp)
        if not events or b'"error"' not in events[-1]:
            self.fail_with_logs("the client got no error event; last events: %r" % events[-3:])
        self.assertTrue(clean, "the response did not end cleanly after its error event")
        self.assertIn("allowance ran out", json.loads(events[-1].split(b"data: ", 1)[1])["error"]["message"])
        if not live.closed.wait(DEADLINE):
            self.fail_with_logs("the upstream connection was not closed (%d events sent)" % live.sent)
        r = eventually(lambda: self.daemon.reports("out-1"), "the cut stream's report in the ledger")[0]
        passed = ba.output_tokens(ba.CHAT, "m", (len(events) - 1) * 300)
        per_event = ba.output_tokens(ba.CHAT, "m", 300)
        self.assertEqual(r["complete"], 0, r)
        self.assertGreaterEqual(r["output"], passed, "less output than passed to the client")
        # The bound: what the stream spent exceeds what the budget had by at
        # most the event that crossed it (counted, not passed on).
        self.assertLessEqual(r["counted"], limit + per_event, r)
        self.assertGreater(r["counted"], limit - ba.OUTPUT_SLICE, "cut long before the budget was spent")


if __name__ == "__main__":
    unittest.main()

"""Tests of the bottlecap mitmproxy addon with stub flows (no mitmproxy needed;
test_mitmdump.py runs it in the real mitmdump).

Run: python3 -m unittest discover -s integrations/mitmproxy
With BOTTLECAP_TEST_SOCKET set to a live daemon's socket (the Go test
TestMitmproxyAddonReportsToRealDaemon does this), LiveDaemonTest posts real
reports; the Go test then checks the daemon's ledger.
"""

import asyncio
import atexit
import gzip
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import threading
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
os.environ["BOTTLECAP_NO_AUTOLOAD"] = "1"
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bottlecap_addon as ba  # noqa: E402

ba.log.addHandler(logging.NullHandler())  # expected warnings stay out of the test output
ba.log.propagate = False

TESTDATA = os.path.join(HERE, "..", "..", "meter", "usage", "testdata")
FIELDS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens", "total_tokens")
PATHS = {
    ba.CHAT: "/v1/chat/completions",
    ba.RESPONSES: "/v1/responses",
    ba.ANTHROPIC: "/v1/messages",
    ba.GEMINI: "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
}
HOSTS = {ba.CHAT: "api.openai.com", ba.RESPONSES: "api.openai.com", ba.ANTHROPIC: "api.anthropic.com",
         ba.GEMINI: "generativelanguage.googleapis.com"}


def fixtures():
    with open(os.path.join(TESTDATA, "expected.json")) as f:
        return json.load(f)


def body(name):
    with open(os.path.join(TESTDATA, name), "rb") as f:
        return f.read()


class Headers(dict):
    """Case-insensitive headers, as mitmproxy's are."""

    def __init__(self, items=None):
        super().__init__()
        for k, v in (items or {}).items():
            self[k] = v

    def __setitem__(self, k, v):
        super().__setitem__(k.lower(), v)

    def get(self, k, default=None):
        return super().get(k.lower(), default)


class Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def stub_flow(fmt, content, status=200, headers=None, method="POST", req_body=b"{}", path=None):
    host = HOSTS[fmt]
    req = Obj(method=method, path=path or PATHS[fmt], host=host, pretty_host=host,
              headers=Headers({"content-type": "application/json"}), content=req_body)
    resp = Obj(status_code=status, headers=Headers(headers or {"content-type": "application/json"}),
               content=content, stream=None)
    return Obj(id=str(random.random()), request=req, response=resp)


def request_flow(fmt, **kw):
    """A flow at the request stage: no response yet."""
    flow = stub_flow(fmt, None, **kw)
    flow.response = None
    return flow


class FakeReporter:
    def __init__(self):
        self.reports = []

    def add(self, r):
        self.reports.append(r)

    def flush(self, timeout=None):
        return True


def addon(env=None, verdict=None, daemon=None):
    env = dict({"BOTTLECAP_BOTTLE": "dev-1", "BOTTLECAP_AGENT": "implementer",
                "BOTTLECAP_SOCKET": "/nonexistent/bottlecap.sock"}, **(env or {}))
    made = []

    def make_response(status, b, headers):
        made.append((status, b, headers))
        return Obj(status_code=status, body=b, headers=Headers(headers))
    a = ba.Addon(ba.Settings(env), FakeReporter(), make_response, verdict, daemon)
    return a, made


def run(coro):
    return asyncio.run(coro)


NAIVE = {"BOTTLECAP_ALLOWANCES": "0"}  # today's cached gate, charge after


async def admit(a, flow):
    """The request hooks mitmproxy runs before anything goes upstream."""
    await a.requestheaders(flow)
    if flow.response is None:
        await a.request(flow)


class FixtureTest(unittest.TestCase):
    def check(self, got, fx, where):
        for k in FIELDS:
            self.assertEqual(got[k], fx[k], "%s: %s = %s, want %s" % (where, k, got[k], fx[k]))
        self.assertEqual(got["format"], fx["format"], where)

    def test_whole(self):
        for fx in fixtures():
            for fmt, path in ((ba.AUTO, ""), (fx["format"], ""), (ba.AUTO, PATHS[fx["format"]])):
                self.check(ba.parse_body(body(fx["file"]), fmt, path), fx, "%s %s %s" % (fx["file"], fmt, path))

    def test_chunked_and_line_endings(self):
        for fx in fixtures():
            raw = body(fx["file"])
            variants = {"as is": raw}
            if fx["file"].endswith(".sse"):
                lf = raw.replace(b"\r\n", b"\n")
                variants.update(lf=lf, crlf=lf.replace(b"\n", b"\r\n"), cr=lf.replace(b"\n", b"\r"))
            if fx["file"].endswith(".jsonl"):
                lines = raw.strip().split(b"\n")
                variants["sse"] = b"".join(b"data: " + l + b"\r\n\r\n" for l in lines) + b"data: [DONE]\r\n\r\n"
                variants["array"] = b"[" + b",\n".join(lines) + b"]"
            for name, b in variants.items():
                for seed in (1, 2, 42):
                    rng, p, rest = random.Random(seed), ba.UsageParser(), b
                    while rest:
                        n = rng.randint(1, 17)
                        p.feed(rest[:n])
                        rest = rest[n:]
                    self.check(p.result(), fx, "%s %s seed %d" % (fx["file"], name, seed))

    def test_identity(self):
        got = ba.parse_body(body("anthropic-messages-stream-tooluse.sse"))
        self.assertEqual(got["id"], "msg_01AusY9WEbCaj3N7Tv5J4YjH")
        self.assertEqual(got["model"], "claude-haiku-4-5-20251001")
        self.assertTrue(got["complete"])

    def test_truncated_stream_incomplete(self):
        raw = body("anthropic-messages-stream-tooluse.sse")
        cut = raw[: raw.index(b"message_delta")]
        got = ba.parse_body(cut)
        self.assertFalse(got["complete"])
        self.assertTrue(got["found"])
        self.assertGreater(got["input_tokens"], 0)

    def test_anthropic_delta_overrides(self):
        sse = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m1","usage":{"input_tokens":10,"output_tokens":1}}}\n\n'
               b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":5}}\n\n'
               b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":9,"input_tokens":12}}\n\n')
        got = ba.parse_body(sse)
        self.assertEqual((got["input_tokens"], got["output_tokens"], got["complete"]), (12, 9, True))

    def test_anthropic_iterations_summed(self):
        b = json.dumps({"type": "message", "id": "m", "usage": {"input_tokens": 5, "output_tokens": 7, "iterations": [
            {"input_tokens": 100, "output_tokens": 20, "cache_read_input_tokens": 3},
            {"input_tokens": 5, "output_tokens": 7}]}}).encode()
        got = ba.parse_body(b)
        self.assertEqual((got["input_tokens"], got["output_tokens"], got["cache_read_tokens"]), (105, 27, 3))

    def test_openai_cached_subtracted(self):
        b = json.dumps({"object": "chat.completion", "usage": {"prompt_tokens": 100, "completion_tokens": 5,
                                                               "prompt_tokens_details": {"cached_tokens": 60}}}).encode()
        got = ba.parse_body(b)
        self.assertEqual((got["input_tokens"], got["cache_read_tokens"]), (40, 60))


class AddonTest(unittest.TestCase):
    def test_reports_every_fixture(self):
        for fx in fixtures():
            a, _ = addon()
            ctype = "text/event-stream" if fx["file"].endswith(".sse") else "application/json"
            flow = stub_flow(fx["format"], body(fx["file"]), headers={"content-type": ctype})
            a.responseheaders(flow)
            if fx["file"].endswith(".sse"):
                self.assertIsNotNone(flow.response.stream, fx["file"])
                for i in range(0, len(flow.response.content), 100):
                    self.assertEqual(flow.response.stream(flow.response.content[i:i + 100]),
                                     flow.response.content[i:i + 100])
            a.response(flow)
            self.assertEqual(len(a.reporter.reports), 1, fx["file"])
            r = a.reporter.reports[0]
            for k in FIELDS[:-1]:
                self.assertEqual(r[k], fx[k], "%s %s" % (fx["file"], k))
            self.assertTrue(r["id"], fx["file"])
            self.assertEqual((r["bottle"], r["agent"], r["host"]), ("dev-1", "implementer", HOSTS[fx["format"]]))

    def test_provider_by_host(self):
        a, _ = addon({"BOTTLECAP_HOSTS": "ollama=pi"})
        flow = stub_flow(ba.CHAT, body("openai-chat-nonstream.json"))
        flow.request.pretty_host = "ollama"
        a.response(flow)
        self.assertEqual(a.reporter.reports[0]["provider"], "pi")
        flow = stub_flow(ba.ANTHROPIC, body("anthropic-messages-nonstream.json"))
        flow.request.pretty_host = "example.com"
        a.response(flow)
        self.assertEqual(len(a.reporter.reports), 1, "a non-provider host was reported")

    def test_errors_and_unmetered_paths_not_reported(self):
        a, _ = addon()
        a.response(stub_flow(ba.CHAT, b'{"error":{}}', status=400))
        a.response(stub_flow(ba.CHAT, b'{"data":[]}', method="GET", path="/v1/models"))
        self.assertEqual(a.reporter.reports, [])

    def test_fallback_id_from_request_id(self):
        a, _ = addon()
        a.response(stub_flow(ba.CHAT, b'{"object":"chat.completion","usage":{"prompt_tokens":1,"completion_tokens":1}}',
                             headers={"X-Request-Id": "req_123"}))
        self.assertEqual(a.reporter.reports[0]["id"], "codex-req-req_123")

    def test_broken_stream_reported_incomplete(self):
        a, _ = addon()
        raw = body("anthropic-messages-stream-tooluse.sse")
        flow = stub_flow(ba.ANTHROPIC, None, headers={"content-type": "text/event-stream"})
        a.responseheaders(flow)
        flow.response.stream(raw[: raw.index(b"message_delta")])
        a.error(flow)
        r = a.reporter.reports[0]
        self.assertFalse(r["complete"])
        self.assertEqual(r["id"], "msg_01AusY9WEbCaj3N7Tv5J4YjH")

    def test_include_usage_added(self):
        a, _ = addon({"BOTTLECAP_GATE": "0"})
        flow = request_flow(ba.CHAT, req_body=b'{"model":"m","stream":true}')
        run(a.requestheaders(flow))
        run(a.request(flow))
        self.assertEqual(json.loads(flow.request.content)["stream_options"], {"include_usage": True})
        self.assertEqual(flow.request.headers.get("Accept-Encoding"), "identity")
        flow = request_flow(ba.CHAT, req_body=b'{"model":"m"}')
        run(a.request(flow))
        self.assertEqual(flow.request.content, b'{"model":"m"}')

    def test_gate_denied_provider_shapes(self):
        v = {"allowed": False, "reason": "bottle dev-1 budget exhausted (claude 10/10)"}
        for fmt, check in ((ba.ANTHROPIC, lambda b: b["error"]["type"] == "rate_limit_error"),
                           (ba.CHAT, lambda b: b["error"]["type"] == "insufficient_quota"),
                           (ba.GEMINI, lambda b: b["error"]["status"] == "RESOURCE_EXHAUSTED")):
            a, made = addon(NAIVE, verdict=lambda provider: v)
            flow = request_flow(fmt)
            run(a.requestheaders(flow))
            status, b, headers = made[0]
            self.assertEqual(status, 429)
            self.assertEqual(headers.get("x-should-retry"), "false")
            self.assertTrue(check(b), b)
            self.assertIn("budget exhausted", json.dumps(b))

    def test_gate_unreachable_fails_closed_or_open(self):
        for env in (NAIVE, {}):  # the socket does not exist
            a, made = addon(env)
            flow = request_flow(ba.ANTHROPIC)
            run(admit(a, flow))
            self.assertEqual(made[0][0], 503, env)
            self.assertEqual(made[0][2].get("x-should-retry"), "false")
            self.assertIn("cannot be reached", made[0][1]["error"]["message"])
            a, made = addon(dict(env, BOTTLECAP_FAIL_OPEN="1"))
            run(admit(a, request_flow(ba.ANTHROPIC)))
            self.assertEqual(made, [], env)


class ReporterTest(unittest.TestCase):
    def test_retries_until_acknowledged(self):
        calls = []

        def send(sock, reports):
            calls.append([r["id"] for r in reports])
            if len(calls) < 3:
                raise ConnectionRefusedError("daemon down")
            return {"accepted": len(reports)}
        r = ba.Reporter("/x.sock", retry_seconds=60, send=send)
        r.add({"id": "a"})
        self.assertTrue(r.flush(10))
        self.assertEqual((calls, list(r.sent)), ([["a"], ["a"], ["a"]], ["a"]))

    def test_permanent_refusal_dropped(self):
        def send(sock, reports):
            raise ba.PermanentError("bad")
        r = ba.Reporter("/x.sock", send=send)
        r.add({"id": "b"})
        self.assertTrue(r.flush(10))
        self.assertEqual([d["id"] for d in r.dropped], ["b"])


class DecoderTest(unittest.TestCase):
    def decoded(self, enc, raw, step=7):
        d, out = ba.Decoder(enc), b""
        for i in range(0, len(raw), step):
            out += b"".join(d.feed(raw[i:i + step]))
        return out

    def test_gzip_members_and_deflate_both_ways(self):
        data = body("openai-chat-stream-include-usage.sse")
        self.assertEqual(self.decoded("gzip", gzip.compress(data[:900]) + gzip.compress(data[900:])), data)
        self.assertEqual(self.decoded("deflate", zlib.compress(data)), data)
        raw = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.assertEqual(self.decoded("deflate", raw.compress(data) + raw.flush()), data)
        self.assertEqual(self.decoded("identity", data), data)
        self.assertEqual(self.decoded("gzip, deflate", zlib.compress(gzip.compress(data))), data)

    def test_expansion_handed_over_in_pieces(self):
        pieces = list(ba.Decoder("gzip").feed(gzip.compress(b" " * (3 * ba.DECODE_PIECE))))
        self.assertEqual(sum(map(len, pieces)), 3 * ba.DECODE_PIECE)
        self.assertTrue(all(len(p) <= ba.DECODE_PIECE for p in pieces))

    @unittest.skipUnless(ba.brotli and ba.zstandard, "brotli/zstandard not importable by this python (mitmdump's is tested in test_mitmdump)")
    def test_brotli_zstd(self):
        data = body("anthropic-messages-stream-tooluse.sse")
        self.assertEqual(self.decoded("br", ba.brotli.compress(data)), data)
        self.assertEqual(self.decoded("zstd", ba.zstandard.ZstdCompressor().compress(data)), data)

    def test_unsupported(self):
        with self.assertRaises(ba.UnsupportedEncoding):
            ba.Decoder("compress")

    def test_corrupt_body_marks_tap_broken(self):
        tap = ba.Tap("/v1/messages", "gzip")
        tap.feed(b"not gzip at all")
        self.assertIn("could not be decoded", tap.broken)


class HTTPReplyTest(unittest.TestCase):
    def test_chunked_and_length(self):
        self.assertEqual(ba.parse_http_reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                             b"5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n"), (200, {"a": 1}))
        self.assertEqual(ba.parse_http_reply(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 13\r\n\r\n"
                                             b'{"error":"x"}'), (403, {"error": "x"}))
        for bad in (b"", b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}"):
            with self.assertRaises(ValueError):
                ba.parse_http_reply(bad)


class RefusalTest(unittest.TestCase):
    def test_upgrade_on_provider_host_426(self):
        a, made = addon(verdict=lambda p: {"allowed": True})
        flow = request_flow(ba.RESPONSES, method="GET")
        flow.request.headers["connection"] = "Upgrade"
        flow.request.headers["upgrade"] = "websocket"
        run(a.requestheaders(flow))
        status, b, headers = made[0]
        self.assertEqual((status, headers["x-should-retry"]), (426, "false"))
        self.assertEqual(b["error"]["code"], "websocket_not_metered")

    def test_denial_names_the_budget(self):
        v = {"allowed": False, "scope": "agent", "scope_id": "dev-1/implementer", "provider": "claude",
             "limit": 500, "used": 512, "held": 7, "reason": "agent budget exhausted"}
        a, made = addon(NAIVE, verdict=lambda p: v)
        run(a.requestheaders(request_flow(ba.ANTHROPIC)))
        msg = made[0][1]["error"]["message"]
        for part in ("scope agent dev-1/implementer", "provider claude", "limit 500", "used 512", "held 7"):
            self.assertIn(part, msg)

    def test_backed_up_reports_refuse_new_requests(self):
        for env in (NAIVE, {}):
            a, made = addon(env, verdict=lambda p: {"allowed": True})
            a.reporter.full = lambda: True
            run(admit(a, request_flow(ba.CHAT)))
            self.assertEqual(made[0][0], 503, env)
            self.assertIn("backing up", made[0][1]["error"]["message"])

    def test_undecodable_response_withheld_unless_fail_open(self):
        for env, want in (({}, 502), ({"BOTTLECAP_FAIL_OPEN": "1"}, 200)):
            a, made = addon(env)
            flow = stub_flow(ba.CHAT, b"...", headers={"content-type": "application/json", "content-encoding": "compress"})
            a.responseheaders(flow)
            a.response(flow)
            self.assertEqual(flow.response.status_code, want, env)
            self.assertEqual(a.reporter.reports, [])

    def test_stream_large_bodies_tails_json(self):
        a, _ = addon()
        a.stream_large_bodies = True
        raw = body("openai-chat-nonstream.json")
        flow = stub_flow(ba.CHAT, None)
        a.responseheaders(flow)
        self.assertTrue(callable(flow.response.stream), "a JSON body mitmproxy may stream is not tailed")
        for i in range(0, len(raw), 50):
            self.assertEqual(flow.response.stream(raw[i:i + 50]), raw[i:i + 50])
        a.response(flow)  # content is None, as when mitmproxy streamed it
        self.assertEqual(a.reporter.reports[0]["output_tokens"], fixture_of("openai-chat-nonstream.json")["output_tokens"])

    def test_existing_stream_callable_kept(self):
        a, _ = addon()
        raw = body("gemini-streamgeneratecontent.sse")
        flow = stub_flow(ba.GEMINI, None, headers={"content-type": "text/event-stream"})
        flow.response.stream = lambda chunk: chunk.upper()
        a.responseheaders(flow)
        self.assertEqual(flow.response.stream(raw), raw.upper())
        a.response(flow)
        self.assertEqual(a.reporter.reports[0]["output_tokens"], fixture_of("gemini-streamgeneratecontent.sse")["output_tokens"])


def fixture_of(name):
    return next(f for f in fixtures() if f["file"] == name)


class UnmeteredTest(unittest.TestCase):
    """Calls that spend tokens bottlecap does not meter are refused before
    they go upstream, unless the operator names them."""

    # What agents call besides generation, on each API's host: none is refused.
    SPARED = (
        (ba.ANTHROPIC, "/v1/messages/count_tokens"), (ba.ANTHROPIC, "/v1/messages/batches/msgbatch_1/cancel"),
        (ba.ANTHROPIC, "/api/event_logging/batch"), (ba.ANTHROPIC, "/api/oauth/claude_cli/create_api_key"),
        (ba.ANTHROPIC, "/v1/sessions"), (ba.ANTHROPIC, "/v1/files"),
        (ba.CHAT, "/v1/responses/input_tokens"), (ba.CHAT, "/v1/batches/batch_1/cancel"), (ba.CHAT, "/v1/moderations"),
        (ba.CHAT, "/v1/threads/thread_1/messages"), (ba.CHAT, "/v1/fine_tuning/jobs/ftjob_1/cancel"),
        (ba.CHATGPT, "/backend-api/codex/models"), (ba.CHATGPT, "/backend-api/wham/tasks/list"),
        (ba.GEMINI, "/v1beta/models/gemini-2.5-pro:countTokens"), (ba.GEMINI, "/v1beta/files"),
    )

    def test_spared(self):
        for family, path in self.SPARED:
            self.assertIsNone(ba.unmetered_call(family, path), path)

    def test_any_spelling(self):
        for family, path, pattern in (
                (ba.CHAT, "/v1//batches", "/v1/batches"), (ba.CHAT, "/v1/batches/", "/v1/batches"),
                (ba.CHAT, "/v1/./files/../batches?x=1", "/v1/batches"), (ba.CHAT, "/V1/Embeddings", "/v1/embeddings"),
                (ba.CHAT, "/v1/threads/thread%2Fx/runs", "/v1/threads/*/runs"),
                (ba.GEMINI, "/v1beta/models/gemini-embedding-001:EMBEDCONTENT", "/*/models/*:embedContent"),
                (ba.GEMINI, "/v1/models/gemini-embedding-001:embedContent", "/*/models/*:embedContent"),
                (ba.GEMINI, "/v1internal:streamGenerateChat", "/v1internal:streamGenerateChat"),
                (ba.CHAT, "/v1beta/openai/embeddings", "/*/openai/embeddings")):
            call = ba.unmetered_call(family, path)
            self.assertEqual(call and call[0], pattern, path)
        self.assertIsNone(ba.unmetered_call(ba.CHAT, "/v1/threads/a/b/runs"), "a * crossed a /")

    def test_refused_403_in_provider_shape(self):
        """On each API's own host, through the request hooks: a 403 in the
        API's shape, not to be retried, naming the call and the way
        through; the daemon is not asked, even with the gate off."""
        cases = ((ba.ANTHROPIC, "/v1/messages/batches", "permission_error"),
                 (ba.CHAT, "/v1/embeddings", "invalid_request_error"),
                 (ba.CHATGPT, "/backend-api/wham/tasks", "invalid_request_error"),
                 (ba.GEMINI, "/v1beta/models/gemini-embedding-001:batchEmbedContents", "PERMISSION_DENIED"))
        for env in ({}, NAIVE, {"BOTTLECAP_GATE": "0"}):
            for family, path, kind in cases:
                asked = []
                a, made = addon(env, verdict=lambda p: asked.append(p) or {"allowed": True})
                fmt = ba.RESPONSES if family == ba.CHATGPT else family
                flow = request_flow(fmt, path=path)
                run(admit(a, flow))
                self.assertEqual(len(made), 1, (env, path))
                status, b, headers = made[0]
                self.assertEqual((status, headers["x-should-retry"]), (403, "false"), path)
                err = b["error"]
                got = err["status"] if family == ba.GEMINI else err["type"]
                self.assertEqual(got, kind, path)
                for part in (path, "does not meter", "budget cannot see", "BOTTLECAP_PASS_UNMETERED="):
                    self.assertIn(part, err["message"], path)
                self.assertEqual(asked, [], "the daemon was asked about an unmetered call")
                self.assertEqual(a._flights, {}, path)

    def test_get_and_passed_go_on(self):
        a, made = addon(NAIVE, verdict=lambda p: {"allowed": True})
        run(admit(a, request_flow(ba.CHAT, method="GET", path="/v1/batches")))
        self.assertEqual(made, [], "a GET was refused")
        a, made = addon(dict(NAIVE, BOTTLECAP_PASS_UNMETERED="/v1/embeddings, /*/models/*:embedContent"),
                        verdict=lambda p: {"allowed": True})
        run(admit(a, request_flow(ba.CHAT, path="/v1/embeddings")))
        run(admit(a, request_flow(ba.GEMINI, path="/v1beta/models/gemini-embedding-001:embedContent")))
        self.assertEqual(made, [], "a passed call was refused")
        run(admit(a, request_flow(ba.CHAT, path="/v1/batches")))
        self.assertEqual([m[0] for m in made], [403], "a call not passed went on")

    def test_unknown_pass_name_fails_load(self):
        for raw in ("/v1/embedding", "/v1/chat/completions", "/V1/EMBEDDINGS"):
            with self.assertRaises(ValueError) as cm:
                ba.Settings({"BOTTLECAP_PASS_UNMETERED": "/v1/batches," + raw})
            self.assertIn(raw, str(cm.exception))


class PathTest(unittest.TestCase):
    """A generation call is metered under any spelling an upstream may fold
    to it, and sent on as the table spells it; only a POST generates."""

    # (host format, path as sent, path as sent on), the meter's cases
    # (meter/paths_test.go TestMeteredUnderAnySpelling).
    SPELLINGS = (
        (ba.ANTHROPIC, "/v1/messages?beta=true", "/v1/messages?beta=true"),
        (ba.ANTHROPIC, "/v1/messages/", "/v1/messages"),
        (ba.ANTHROPIC, "//v1/messages", "/v1/messages"),
        (ba.ANTHROPIC, "/v1/./messages", "/v1/messages"),
        (ba.ANTHROPIC, "/v1/models/../messages", "/v1/messages"),
        (ba.ANTHROPIC, "/v1/messages%2F", "/v1/messages"),
        (ba.ANTHROPIC, "/v1/messages%252F", "/v1/messages"),
        (ba.ANTHROPIC, "/v1/mess%61ges", "/v1/messages"),
        (ba.ANTHROPIC, "/V1/Messages", "/V1/messages"),
        (ba.ANTHROPIC, "/v1/messages;x=1", "/v1/messages"),
        (ba.ANTHROPIC, "/v1\\messages", "/v1/messages"),
        (ba.RESPONSES, "/v1/responses/", "/v1/responses"),
        (ba.CHAT, "/v1/chat/completions//", "/v1/chat/completions"),
        (ba.RESPONSES, "/v1/Responses/Compact", "/v1/responses/compact"),
        (ba.RESPONSES, "/backend-api/codex//responses", "/backend-api/codex/responses"),
        (ba.GEMINI, "/v1/models/gemini-2.5-flash:generateContent", "/v1/models/gemini-2.5-flash:generateContent"),
        (ba.GEMINI, "/v1beta/tunedModels/my-model-1:streamGenerateContent?alt=sse",
         "/v1beta/tunedModels/my-model-1:streamGenerateContent?alt=sse"),
        (ba.GEMINI, "/v1beta/dynamic/gemini-flash:generateContent", "/v1beta/dynamic/gemini-flash:generateContent"),
        (ba.GEMINI, "/v1beta/models/gemini-2.5-flash:GENERATECONTENT/", "/v1beta/models/gemini-2.5-flash:generateContent"),
        (ba.GEMINI, "/v1beta/models/gemini-2.5-flash%3AgenerateContent", "/v1beta/models/gemini-2.5-flash:generateContent"),
        (ba.GEMINI, "/v1beta/openai/chat/completions", "/v1beta/openai/chat/completions"),
        (ba.GEMINI, "/v1beta:chatCompletions", "/v1beta:chatCompletions"),
        (ba.GEMINI, "/v1internal:generateContent/", "/v1internal:generateContent"),
    )

    def test_metered_and_sent_on_as_spelled(self):
        for fmt, sent, want in self.SPELLINGS:
            self.assertEqual(ba.metered_path(sent), want, sent)
            asked = []
            a, made = addon(NAIVE, verdict=lambda p: asked.append(p) or {"allowed": True})
            flow = request_flow(fmt, path=sent)
            run(admit(a, flow))
            self.assertEqual(made, [], sent)
            self.assertEqual((flow.request.path, len(asked)), (want, 1), sent)
            self.assertIn(flow.id, a._flights, sent)

    def test_not_generation_calls(self):
        for path in ("/v1/messages/count_tokens", "/v1/responses/input_tokens", "/v1beta/models/g:countTokens",
                     "/v1internal:loadCodeAssist", "/v1/messages%3Fx", "/v1/models"):
            self.assertIsNone(ba.metered_path(path), path)

    def test_clean_is_a_fixpoint(self):
        rng = random.Random(7)
        parts = ["/", "//", ".", "..", ";a", "%2F", "%2e", "\\", "v1", "messages", "%25", "?", "x"]
        for _ in range(2000):
            p = "".join(rng.choice(parts) for _ in range(rng.randint(0, 12)))
            c = ba._clean(p)
            self.assertEqual(ba._clean(c), c, p)
            self.assertTrue(c.startswith("/") and "//" not in c and ";" not in c and "\\" not in c, (p, c))
            self.assertFalse(c != "/" and c.endswith("/"), (p, c))
            self.assertFalse({".", ".."} & set(c.split("/")), (p, c))

    def test_only_post_generates(self):
        """A bodiless read of a generation endpoint passes, unmetered; any
        other request that could carry a prompt there is refused (403, the
        API's shape, even with the gate off; the daemon not asked)."""
        refused = ((ba.ANTHROPIC, "PUT", "/v1/messages", "permission_error"),
                   (ba.CHAT, "PATCH", "/v1/chat/completions", "invalid_request_error"),
                   (ba.RESPONSES, "GET", "/v1/responses", "invalid_request_error"),
                   (ba.GEMINI, "DELETE", "/v1beta/models/g:generateContent", "PERMISSION_DENIED"),
                   (ba.CHAT, "PUT", "/v1/embeddings", "invalid_request_error"))
        for env in (NAIVE, {}, {"BOTTLECAP_GATE": "0"}):
            for fmt, method, path, kind in refused:
                asked = []
                a, made = addon(env, verdict=lambda p: asked.append(p) or {"allowed": True})
                flow = request_flow(fmt, method=method, path=path)
                flow.request.headers["content-length"] = "2"
                run(admit(a, flow))
                self.assertEqual([m[0] for m in made], [403], (env, method, path))
                err = made[0][1]["error"]
                self.assertEqual(err["status"] if fmt == ba.GEMINI else err["type"], kind, path)
                self.assertIn("%s %s" % (method, path), err["message"])
                self.assertEqual((asked, a._flights), ([], {}), path)
        for method in ("GET", "HEAD", "OPTIONS"):
            asked = []
            a, made = addon(NAIVE, verdict=lambda p: asked.append(p) or {"allowed": True})
            flow = request_flow(ba.CHAT, method=method, path="/v1/chat/completions", req_body=b"")
            run(admit(a, flow))
            self.assertEqual((made, asked, a._flights), ([], [], {}), method)


class UnreadableAnswerTest(unittest.TestCase):
    def test_google_system_parameters_refused(self):
        """A Gemini generation call asking for protocol buffers or filtered
        fields is refused (403) before the upstream; alt=sse and alt=json
        are metered."""
        gen = "/v1beta/models/gemini-2.5-flash:generateContent"
        for path, headers in ((gen + "?alt=proto", {}), (gen + "?%24alt=proto", {}), (gen + "?fields=candidates", {}),
                              (gen + "?alt=sse&$fields=x", {}), ("/v1beta/openai/chat/completions?fields=choices", {}),
                              (gen, {"x-goog-fieldmask": "candidates"})):
            asked = []
            a, made = addon(NAIVE, verdict=lambda p: asked.append(p) or {"allowed": True})
            flow = request_flow(ba.GEMINI, path=path)
            for k, v in headers.items():
                flow.request.headers[k] = v
            run(admit(a, flow))
            self.assertEqual([m[0] for m in made], [403], path)
            self.assertEqual(made[0][1]["error"]["status"], "PERMISSION_DENIED", path)
            self.assertIn("cannot read the usage", made[0][1]["error"]["message"], path)
            self.assertEqual((asked, a._flights), ([], {}), path)
        for path in (gen + "?alt=sse", gen + "?alt=json", gen):
            a, made = addon(NAIVE, verdict=lambda p: {"allowed": True})
            flow = request_flow(ba.GEMINI, path=path)
            run(admit(a, flow))
            self.assertEqual(made, [], path)
            self.assertIn(flow.id, a._flights, path)
        self.assertEqual(ba.unreadable_ask(ba.CHAT, "/v1/chat/completions?alt=proto", Headers()), "",
                         "OpenAI has no such parameter")


class CodeAssistTest(unittest.TestCase):
    """Gemini CLI signed in with Google: Code Assist wraps Gemini's request
    and each answer (gemini-cli's CaGenerateContentResponse, code_assist/
    converter.ts); its usage is read inside "response"."""

    @staticmethod
    def wrapped(keep_id=True):
        out = []
        for ev in body("gemini-streamgeneratecontent.sse").decode().replace("\r\n", "\n").split("\n\n"):
            if not ev.strip():
                continue
            inner = json.loads(ev.strip()[len("data:"):])
            if not keep_id:
                inner.pop("responseId", None)
            out.append("data: %s\r\n\r\n" % json.dumps({"response": inner, "traceId": "trace-7f3a"}))
        return "".join(out).encode()

    def test_usage_read_inside_response(self):
        fx = fixture_of("gemini-streamgeneratecontent.sse")
        plain = ba.parse_body(body("gemini-streamgeneratecontent.sse"), ba.GEMINI)
        for keep_id, want_id in ((True, "ru1garvBEoOiqtsP2fznmQw"), (False, "trace-7f3a")):
            for fmt, path in ((ba.GEMINI, ""), (ba.AUTO, "/v1internal:streamGenerateContent?alt=sse"), (ba.AUTO, "")):
                got = ba.parse_body(self.wrapped(keep_id), fmt, path)
                for k in FIELDS:
                    self.assertEqual(got[k], fx[k], (k, fmt, path))
                self.assertTrue(got["complete"] and got["found"], (fmt, path))
                self.assertEqual((got["id"], got["model"]), (want_id, "gemini-2.5-flash"))
                self.assertEqual(got["delta_bytes"], plain["delta_bytes"])
                self.assertGreater(got["delta_bytes"], 0)

    def test_reported_from_its_host(self):
        fx = fixture_of("gemini-streamgeneratecontent.sse")
        a, _ = addon(NAIVE, verdict=lambda p: {"allowed": True})
        raw = self.wrapped()
        flow = request_flow(ba.GEMINI, path="/v1internal:streamGenerateContent?alt=sse")
        flow.request.host = flow.request.pretty_host = "cloudcode-pa.googleapis.com"
        run(admit(a, flow))
        self.assertIn(flow.id, a._flights, "a Code Assist generation call was not admitted as metered")
        flow.response = Obj(status_code=200, headers=Headers({"content-type": "text/event-stream"}), content=None,
                            stream=None)
        a.responseheaders(flow)
        self.assertEqual(b"".join(flow.response.stream(raw[i:i + 40]) for i in range(0, len(raw), 40))
                         + flow.response.stream(b""), raw)
        a.response(flow)
        self.assertEqual(len(a.reporter.reports), 1)
        r = a.reporter.reports[0]
        self.assertEqual((r["provider"], r["host"], r["id"]), ("gemini", "cloudcode-pa.googleapis.com", "ru1garvBEoOiqtsP2fznmQw"))
        self.assertEqual(r["output_tokens"], fx["output_tokens"])

    def test_request_estimated_inside_request(self):
        inner = {"contents": [{"role": "user", "parts": [{"text": "word " * 2000}]}]}
        plain, _ = ba.estimate_body(json.dumps(inner).encode(), ba.GEMINI, "/v1beta/models/gemini-2.5-pro:generateContent")
        wrapped, model = ba.estimate_body(json.dumps({"model": "gemini-2.5-pro", "project": "p-1", "user_prompt_id": "u",
                                                      "request": inner}).encode(), ba.GEMINI, "/v1internal:generateContent")
        self.assertEqual((wrapped, model), (plain, "gemini-2.5-pro"))
        self.assertGreater(wrapped, 2000)


class CompactionTest(unittest.TestCase):
    def test_compaction_metered_with_the_requests_model(self):
        """Remote compaction is admitted like a generation call (the
        allowance asked, the gate in naive mode) and reported with its
        usage under the request's model, as it names none."""
        data = body("openai-responses-compact.json")
        for env in (NAIVE, {}):
            asked = []

            async def daemon(method, path, b):
                asked.append(path)
                if path != "/v1/allowances":
                    return 200, {}  # releases
                return 200, {"id": "al-1", "granted": b["tokens"], "weight": 1.0,
                             "expires_at": "2099-01-01T00:00:00Z", "verdict": {"allowed": True, "state": "active"}}
            a, made = addon(env, verdict=lambda p: asked.append("verdict") or {"allowed": True}, daemon=daemon)
            for path in ("/v1/responses/compact", "/backend-api/codex/responses/compact"):
                flow = stub_flow(ba.RESPONSES, data, path=path,
                                 req_body=b'{"model":"gpt-5.1-codex-max","input":"Create a landing page"}')
                before = flow.response
                flow.response = None
                run(admit(a, flow))
                self.assertIsNone(flow.response, (env, path, made))
                flow.response = before
                a.responseheaders(flow)
                a.response(flow)
            self.assertTrue(asked, "a compaction was admitted without asking the daemon")
            self.assertEqual(len(a.reporter.reports), 2, env)
            for r in a.reporter.reports:
                self.assertEqual((r["id"], r["model"], r["complete"]), ("resp_001", "gpt-5.1-codex-max", True))
                self.assertEqual((r["input_tokens"], r["output_tokens"], r["reasoning_tokens"]), (139, 438, 64))


class ReporterBatchTest(unittest.TestCase):
    def test_batched_in_order(self):
        calls, gate = [], threading.Event()

        def send(sock, reports):
            gate.wait(10)  # hold the first call so the rest pile up
            calls.append([r["id"] for r in reports])
        r = ba.Reporter("/x.sock", send=send)
        for i in range(600):
            r.add({"id": str(i)})
        gate.set()
        self.assertTrue(r.flush(30))
        self.assertEqual([i for c in calls for i in c], [str(i) for i in range(600)])
        self.assertTrue(all(len(c) <= ba.Reporter.MAX_BATCH for c in calls))
        self.assertLess(len(calls), 600 // 2, "reports were not batched")
        self.assertEqual((r.acknowledged, len(r.sent)), (600, min(600, ba.Reporter.RECENT)))

    def test_bounded_queue_drops_oldest_and_memory_stays_bounded(self):
        def send(sock, reports):
            raise ConnectionRefusedError("down")
        r = ba.Reporter("/x.sock", send=send, limit=5)
        for i in range(ba.Reporter.RECENT + 20):
            r.add({"id": str(i)})
        self.assertEqual(len(r), 5)
        self.assertEqual(r.dropped_total, ba.Reporter.RECENT + 15)
        self.assertEqual(len(r.dropped), ba.Reporter.RECENT)
        self.assertTrue(r.full())

    def test_refused_report_in_batch_dropped_alone(self):
        got, gate = [], threading.Event()

        def send(sock, reports):
            gate.wait(10)
            if any(x["id"] == "bad" for x in reports):
                raise ba.PermanentError("400 id: required")
            got.extend(x["id"] for x in reports)
        r = ba.Reporter("/x.sock", send=send)
        for rid in ("a", "b", "bad", "c"):
            r.add({"id": rid})
        gate.set()
        self.assertTrue(r.flush(30))
        self.assertEqual(got, ["a", "b", "c"])
        self.assertEqual([d["id"] for d in r.dropped], ["bad"])


# The provider table as bottlecap's Go side has it (budget/providers.go,
# written out by TestProviderTableFixture, which fails when it is stale).
PROVIDERS_JSON = os.path.join(HERE, "providers.json")

# ADDON_REFUSALS are the refusals the addon answers, by the status its
# ERROR_KINDS are keyed on.
ADDON_REFUSALS = {403: "endpoint_not_metered", 426: "upgrade_refused", 429: "denied", 502: "upstream_not_metered",
                  503: "daemon_unavailable"}


def provider_table():
    with open(PROVIDERS_JSON) as f:
        return json.load(f)


def endpoint_path(ep):
    """A request path of an endpoint: its own, with a model for a prefix."""
    return ep["path"] + "gemini-2.5-pro" + ep["suffix"] if ep["path"].endswith("/") else ep["path"]


def fill(envelope, status, kind, message):
    """The table's error envelope with its placeholders filled in."""
    if isinstance(envelope, dict):
        return {k: fill(v, status, kind, message) for k, v in envelope.items()}
    return {"$message": message, "$type": kind.get("type", ""), "$code": kind.get("code", ""),
            "$status": status}.get(envelope, envelope) if isinstance(envelope, str) else envelope


class ProviderTableTest(unittest.TestCase):
    """The addon's own tables say what bottlecap's provider table says."""

    def setUp(self):
        self.table = provider_table()

    def test_hosts(self):
        want = {h: api["provider"] for api in self.table["apis"] for h in api["hosts"]}
        self.assertEqual(ba.DEFAULT_HOSTS, want)

    def test_metered_paths(self):
        endpoints = [ep for api in self.table["apis"] for ep in api["endpoints"]]
        self.assertEqual(set(ba.METERED_SUFFIXES), {ep["suffix"] for ep in endpoints})
        for ep in endpoints:
            path = endpoint_path(ep)
            for p in (path, "/backend-api/codex" + path, path + "?alt=sse"):
                self.assertTrue(ba.metered("POST", p), p)
                self.assertFalse(ba.metered("GET", p), p)
            self.assertEqual(ba.format_for_path(path), ep["format"], path)

    def test_unmetered_calls(self):
        """UNMETERED is the table's list of the calls that spend tokens
        bottlecap does not meter, API by API, and API_OF finds each API's
        list from its error shape."""
        want = {api["family"]: tuple((u["pattern"], u["what"]) for u in api["unmetered"]) for api in self.table["apis"]}
        self.assertEqual(ba.UNMETERED, want)
        for api in self.table["apis"]:
            for u in api["unmetered"]:
                path = u["pattern"].replace("*", "id_1")
                family = ba._family(api["provider"], path)
                self.assertIn(api["family"], ba.API_OF[family], path)
                self.assertEqual(ba.unmetered_call(family, path), (u["pattern"], u["what"]), path)

    def test_shape(self):
        """SHAPE is the table's parameters and headers that ask for an
        answer the usage cannot be read from, API by API."""
        want = {api["family"]: (tuple(api["shape_params"]), tuple(api["shape_headers"]))
                for api in self.table["apis"] if api.get("shape_params") or api.get("shape_headers")}
        self.assertEqual(ba.SHAPE, want)

    def test_unmetered_calls_documented(self):
        """README.md lists every unmetered call, the name operators pass."""
        with open(os.path.join(HERE, "README.md")) as f:
            readme = f.read()
        for api in self.table["apis"]:
            for u in api["unmetered"]:
                self.assertIn("| `%s` | %s |" % (u["pattern"], u["what"]), readme)

    def test_chatgpt_prefixes(self):
        """The APIs with their own path prefixes other than Gemini's are
        ChatGPT's backend, which the addon tells by CHATGPT_PREFIXES."""
        chatgpt = [api for api in self.table["apis"] if api["family"] == ba.CHATGPT]
        self.assertEqual(len(chatgpt), 1)
        self.assertEqual(set(ba.CHATGPT_PREFIXES), set(chatgpt[0]["prefixes"]))
        for ep in chatgpt[0]["endpoints"]:
            self.assertTrue(ep["path"].startswith(ba.CHATGPT_PREFIXES), ep)

    def test_error_shapes(self):
        statuses = {r["name"]: r["status"] for r in self.table["refusals"]}
        self.assertEqual(set(ba.ERROR_KINDS), set(ADDON_REFUSALS))
        for api in self.table["apis"]:
            shape = api["denial"]
            # By the API's host and an endpoint's path, and by the path alone
            # (BOTTLECAP_HOSTS renames a host's provider).
            # Gemini's OpenAI compatibility layer is told from OpenAI's by its
            # host alone.
            families = {ba._family(provider, endpoint_path(ep) + query)
                        for ep in api["endpoints"] for provider in (api["provider"], "renamed") for query in ("", "?alt=sse")
                        if provider != "renamed" or ep["format"] != ba.CHAT or api["family"] == "openai"}
            for status, refusal in ADDON_REFUSALS.items():
                self.assertEqual(statuses[refusal], status, refusal)
                want = fill(shape["envelope"], status, shape["kinds"][refusal], "msg")
                for family in families:
                    self.assertEqual(ba.error_body(family, status, "msg"), want, (api["family"], family, refusal))


@unittest.skipUnless(os.environ.get("BOTTLECAP_TEST_SOCKET"), "BOTTLECAP_TEST_SOCKET not set (run by the Go test)")
class LiveDaemonTest(unittest.TestCase):
    """Posts real reports to a real daemon; the Go test checks its ledger."""

    def test_reports_land(self):
        sock = os.environ["BOTTLECAP_TEST_SOCKET"]
        env = {"BOTTLECAP_SOCKET": sock, "BOTTLECAP_BOTTLE": os.environ.get("BOTTLECAP_TEST_BOTTLE", "py-live"),
               "BOTTLECAP_AGENT": "implementer"}
        settings = ba.Settings(env)
        a = ba.Addon(settings, ba.Reporter(sock, retry_seconds=30))
        for fmt, name in ((ba.ANTHROPIC, "anthropic-messages-stream-tooluse.sse"), (ba.CHAT, "openai-chat-nonstream.json")):
            flow = stub_flow(fmt, body(name), headers={"content-type": "text/event-stream"})
            before = flow.response
            flow.response = None
            asyncio.run(a.requestheaders(flow))  # the live gate allows it
            self.assertIsNone(flow.response, "the live gate refused the request")
            flow.response = before
            asyncio.run(a.request(flow))
            self.assertIs(flow.response, before, "the live gate refused the request")
            a.responseheaders(flow)
            if flow.response.stream:
                flow.response.stream(flow.response.content)
            a.response(flow)
        self.assertTrue(a.reporter.flush(30))
        self.assertEqual(len(a.reporter.sent), 2, a.reporter.dropped)
        # The same report again is acknowledged as a duplicate.
        reply = ba.post_report(sock, a.build_report(stub_flow(ba.ANTHROPIC, b""), "claude",
                                                    ba.parse_body(body("anthropic-messages-stream-tooluse.sse"))))
        self.assertEqual(reply["duplicates"], 1, reply)


if __name__ == "__main__":
    unittest.main()

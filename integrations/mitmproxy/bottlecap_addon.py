"""bottlecap usage metering for bot-bottle's mitmproxy egress.

Load it with ``mitmdump -s bottlecap_addon.py``. For every successful
generation response from a provider host it reads the token usage (JSON
bodies and server-sent event streams, normalised as bottlecap's SPEC section
4 says) and posts a report to the bottlecap daemon's unix socket, retrying
until the daemon acknowledges it. Standard library only.

Configuration comes from the environment (see README.md):
BOTTLECAP_SOCKET, BOT_BOTTLE_HOME, BOTTLECAP_BOTTLE, BOTTLECAP_AGENT,
BOTTLECAP_HOSTS, BOTTLECAP_GATE, BOTTLECAP_FAIL_OPEN, BOTTLECAP_RETRY_SECONDS.
"""

import codecs
import http.client
import json
import logging
import os
import queue
import socket
import threading
import time
import urllib.parse
import uuid
from datetime import datetime, timezone

log = logging.getLogger("bottlecap")

AUTO, CHAT, RESPONSES, ANTHROPIC, GEMINI = "auto", "openai-chat", "openai-responses", "anthropic", "gemini"
FORMATS = (AUTO, CHAT, RESPONSES, ANTHROPIC, GEMINI)
MAX_EVENT = 16 << 20  # an event (or whole JSON body) beyond this is skipped

DEFAULT_HOSTS = {
    "api.anthropic.com": "claude",
    "api.openai.com": "codex",
    "chatgpt.com": "codex",
    "generativelanguage.googleapis.com": "gemini",
}
FAMILY = {"claude": ANTHROPIC, "codex": CHAT, "gemini": GEMINI}


def format_for_path(path):
    """The format a request path implies, or AUTO."""
    path = path.split("?", 1)[0]
    if ":generateContent" in path or ":streamGenerateContent" in path:
        return GEMINI
    if path.endswith("/completions"):
        return CHAT
    if "/responses" in path:
        return RESPONSES
    if path.endswith("/messages"):
        return ANTHROPIC
    return AUTO


# --- reading fields the way Go's typed decoding does -----------------------

def _dict(v):
    return v if isinstance(v, dict) else None


def _str(v):
    return v if isinstance(v, str) else ""


def _has(d, key):
    """A count is present when it is a JSON integer (null = absent)."""
    return d is not None and isinstance(d.get(key), int) and not isinstance(d.get(key), bool)


def _count(d, key):
    """An optional count; absent, mistyped and negative counts are 0."""
    return max(d[key], 0) if _has(d, key) else 0


def _zero():
    return {"input_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0,
            "output_tokens": 0, "reasoning_tokens": 0}


def _detect(e, typ):
    if _dict(e.get("usageMetadata")) is not None or (isinstance(e.get("candidates"), list) and e["candidates"]) \
            or _str(e.get("modelVersion")) or _str(e.get("responseId")):
        return GEMINI
    obj = _str(e.get("object"))
    if typ.startswith("response.") or obj == "response":
        return RESPONSES
    if obj.startswith("chat.completion") or obj == "text_completion":
        return CHAT
    if typ == "message" or typ.startswith("message_") or typ.startswith("content_block_"):
        return ANTHROPIC
    u = _dict(e.get("usage"))
    if u is None:
        return AUTO
    if _has(u, "prompt_tokens") or _has(u, "completion_tokens"):
        return CHAT
    if _has(u, "input_tokens") and (_has(u, "total_tokens") or _dict(u.get("input_tokens_details")) is not None):
        return RESPONSES
    if _has(u, "input_tokens") or _has(u, "cache_read_input_tokens") or _has(u, "cache_creation_input_tokens"):
        return ANTHROPIC
    return AUTO


class _State:
    """What the events of one response have said so far (SPEC section 4)."""

    def __init__(self, fmt):
        self.format = fmt
        self.usage = _zero()
        self.found = self.complete = self.finished = False
        self.model = self.id = ""
        self.iter = None  # Anthropic usage.iterations, summed

    def copy(self):
        c = _State(self.format)
        c.__dict__.update(self.__dict__)
        c.usage = dict(self.usage)
        c.iter = dict(self.iter) if self.iter else None
        return c

    def feed(self, data, name):
        data = data.strip()
        if data == "[DONE]":
            if self.format == CHAT and self.found:
                self.complete = True
            return
        if not data.startswith("{"):
            return
        try:
            e = json.loads(data)
        except ValueError:
            return
        typ = _str(e.get("type")) or name
        if self.format == AUTO:
            self.format = _detect(e, typ)
            if self.format == AUTO:
                return
        {CHAT: self._chat, RESPONSES: self._responses, ANTHROPIC: self._anthropic, GEMINI: self._gemini}[self.format](e, typ)

    def _identify(self, rid, model):
        self.id = self.id or _str(rid)
        self.model = self.model or _str(model)

    def _chat(self, e, _typ):
        self._identify(e.get("id"), e.get("model"))
        u = _dict(e.get("usage"))
        if u is None or not (_has(u, "prompt_tokens") or _has(u, "completion_tokens")):
            return
        cached = _count(_dict(u.get("prompt_tokens_details")), "cached_tokens")
        self.usage = dict(_zero(), input_tokens=max(_count(u, "prompt_tokens") - cached, 0), cache_read_tokens=cached,
                          output_tokens=_count(u, "completion_tokens"),
                          reasoning_tokens=_count(_dict(u.get("completion_tokens_details")), "reasoning_tokens"))
        self.found = True
        choices = e.get("choices") if isinstance(e.get("choices"), list) else []
        finished = any(_str(_dict(c) and c.get("finish_reason")) for c in choices)
        if _str(e.get("object")) != "chat.completion.chunk" or not choices or finished:
            self.complete = True

    def _responses(self, e, typ):
        u = _dict(e.get("usage"))
        r = _dict(e.get("response"))
        if r is not None:
            self._identify(r.get("id"), r.get("model"))
            u = _dict(r.get("usage"))
        else:
            self._identify(e.get("id"), e.get("model"))
        if u is not None and (_has(u, "input_tokens") or _has(u, "output_tokens")):
            cached = _count(_dict(u.get("input_tokens_details")), "cached_tokens")
            self.usage = dict(_zero(), input_tokens=max(_count(u, "input_tokens") - cached, 0), cache_read_tokens=cached,
                              output_tokens=_count(u, "output_tokens"),
                              reasoning_tokens=_count(_dict(u.get("output_tokens_details")), "reasoning_tokens"))
            self.found = True
        if typ in ("response.completed", "response.incomplete", "response.failed"):
            self.complete = True
        elif typ == "":
            self.complete = self.complete or self.found

    def _anthropic(self, e, typ):
        if typ == "message_start":
            m = _dict(e.get("message"))
            if m is not None:
                self._identify(m.get("id"), m.get("model"))
                if _dict(m.get("usage")) is not None:
                    self.usage = _zero()
                    self._anthropic_usage(m["usage"])
        elif typ in ("message_delta", "message", "") and _dict(e.get("usage")) is not None:
            self._identify(e.get("id"), e.get("model"))
            self._anthropic_usage(e["usage"])
            self.complete = True

    def _anthropic_usage(self, u):
        """Each message_delta usage is cumulative: it overrides what it carries."""
        for field, key in (("input_tokens", "input_tokens"), ("cache_read_tokens", "cache_read_input_tokens"),
                           ("cache_write_tokens", "cache_creation_input_tokens"), ("output_tokens", "output_tokens")):
            if _has(u, key):
                self.usage[field] = _count(u, key)
        its = u.get("iterations")
        if isinstance(its, list) and its:
            total = _zero()
            for it in (i for i in its if isinstance(i, dict)):
                total["input_tokens"] += _count(it, "input_tokens")
                total["cache_read_tokens"] += _count(it, "cache_read_input_tokens")
                total["cache_write_tokens"] += _count(it, "cache_creation_input_tokens")
                total["output_tokens"] += _count(it, "output_tokens")
            self.iter = total
        self.found = True

    def _gemini(self, e, _typ):
        self._identify(e.get("responseId"), e.get("modelVersion"))
        for c in e.get("candidates") if isinstance(e.get("candidates"), list) else []:
            if _str(_dict(c) and c.get("finishReason")):
                self.finished = True
        if _str((_dict(e.get("promptFeedback")) or {}).get("blockReason")):
            self.finished = True
        m = _dict(e.get("usageMetadata"))
        if m is not None:
            cached, thoughts = _count(m, "cachedContentTokenCount"), _count(m, "thoughtsTokenCount")
            self.usage = dict(_zero(), cache_read_tokens=cached, reasoning_tokens=thoughts,
                              input_tokens=max(_count(m, "promptTokenCount") - cached, 0) + _count(m, "toolUsePromptTokenCount"),
                              output_tokens=_count(m, "candidatesTokenCount") + thoughts)
            self.found = True
        self.complete = self.found and self.finished

    def result(self):
        u = dict(self.iter if self.iter is not None else self.usage)
        total = u["input_tokens"] + u["cache_read_tokens"] + u["cache_write_tokens"] + u["output_tokens"]
        return dict(u, format=self.format, total_tokens=total, complete=self.complete, found=self.found,
                    model=self.model, id=self.id)


class UsageParser:
    """Reads usage out of a response body fed in chunks of any size: a JSON
    body, JSON values one per line or in an array (Gemini), or server-sent
    events with LF, CRLF or CR line endings."""

    def __init__(self, fmt=AUTO, path=""):
        self._st = _State(fmt if fmt in FORMATS and fmt != AUTO else format_for_path(path))
        self._dec = codecs.getincrementaldecoder("utf-8")("replace")
        self._mode = None  # "sse" or "json"
        self._buf = ""
        self._data, self._name, self._has_data = [], "", False

    def feed(self, chunk):
        text = self._dec.decode(chunk)
        if self._mode is None:
            stripped = text.lstrip(" \t\r\n\ufeff")
            if not stripped:
                return
            self._mode = "json" if stripped[0] in "{[" else "sse"
            text = stripped
        self._buf += text
        self._json() if self._mode == "json" else self._sse()
        if len(self._buf) > MAX_EVENT:
            self._buf = ""  # an oversized event is skipped, never buffered

    def _json(self):
        dec, buf, i = json.JSONDecoder(), self._buf, 0
        while True:
            while i < len(buf) and buf[i] in " \t\r\n,[]":
                i += 1
            if i >= len(buf):
                break
            if buf[i] != "{":
                nl = buf.find("\n", i)
                if nl < 0:
                    break
                i = nl + 1  # a line that is no JSON object: skip it
                continue
            try:
                _, end = dec.raw_decode(buf, i)
            except ValueError:
                break  # incomplete: wait for more
            self._st.feed(buf[i:end], "")
            i = end
        self._buf = buf[i:]

    def _sse(self):
        buf = self._buf.replace("\r\n", "\n")
        hold = buf.endswith("\r")  # its LF may come in the next chunk
        if hold:
            buf = buf[:-1]
        lines = buf.replace("\r", "\n").split("\n")
        self._buf = lines.pop() + ("\r" if hold else "")
        for line in lines:
            self._line(line)

    def _line(self, line):
        if line == "":
            if self._has_data:
                self._st.feed("\n".join(self._data), self._name)
            self._data, self._name, self._has_data = [], "", False
            return
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            self._data.append(value)
            self._has_data = True
        elif field == "event":
            self._name = value[:256]

    def result(self):
        """The usage so far; an event not yet ended counts as if the stream
        ended here. The parser itself is not changed."""
        st = self._st.copy()
        if self._mode == "sse":
            data, has = list(self._data), self._has_data
            field, _, value = self._buf.rstrip("\r").partition(":")
            if field == "data":
                data.append(value[1:] if value.startswith(" ") else value)
                has = True
            if has:
                st.feed("\n".join(data), self._name)
        return st.result()


def parse_body(body, fmt=AUTO, path=""):
    """The usage of a whole body (bytes)."""
    p = UsageParser(fmt, path)
    p.feed(body)
    return p.result()



# --- the daemon's socket ----------------------------------------------------

class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over the daemon's unix socket."""

    def __init__(self, path, timeout=10.0):
        super().__init__("bottlecap", timeout=timeout)
        self.socket_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.socket_path)
        except OSError:
            s.close()
            raise
        self.sock = s


class PermanentError(Exception):
    """The daemon refused a report for good (400, 403, 413): retrying cannot help."""


def call(socket_path, method, path, body=None, timeout=10.0):
    """One request to the daemon; returns (status, decoded JSON reply)."""
    conn = UnixHTTPConnection(socket_path, timeout)
    try:
        headers = {"Content-Type": "application/json", "User-Agent": "bottlecap-mitmproxy"}
        conn.request(method, path, body=None if body is None else json.dumps(body).encode(), headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw or b"null")
        except ValueError:
            return resp.status, {"error": raw[:200].decode("utf-8", "replace")}
    finally:
        conn.close()


def post_report(socket_path, report, timeout=10.0):
    """Sends one report; returns the daemon's reply once it is committed.
    Raises PermanentError for a refused report, OSError or RuntimeError for
    anything worth retrying."""
    status, reply = call(socket_path, "POST", "/v1/usage", report, timeout)
    if 200 <= status < 300:
        return reply
    msg = (reply or {}).get("error", "") if isinstance(reply, dict) else ""
    if status in (400, 403, 413):
        raise PermanentError("daemon refused report %s: %d %s" % (report.get("id"), status, msg))
    raise RuntimeError("daemon answered %d %s" % (status, msg))


class Reporter:
    """Posts reports from a background thread, in order, retrying with
    backoff until the daemon acknowledges each (ids make retries safe)."""

    def __init__(self, socket_path, retry_seconds=3600.0, send=post_report):
        self.socket_path, self.retry_seconds, self._send = socket_path, retry_seconds, send
        self._q = queue.Queue(maxsize=100000)
        self.sent, self.dropped = [], []
        self._thread = threading.Thread(target=self._run, name="bottlecap-reporter", daemon=True)
        self._thread.start()

    def add(self, report):
        try:
            self._q.put_nowait(report)
        except queue.Full:
            log.error("bottlecap: report queue full; dropping report %s", report.get("id"))
            self.dropped.append(report)

    def flush(self, timeout=None):
        """Waits until every queued report was acknowledged or dropped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._q.unfinished_tasks:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _run(self):
        while True:
            report = self._q.get()
            try:
                self._deliver(report)
            finally:
                self._q.task_done()

    def _deliver(self, report):
        wait, stop = 0.05, time.monotonic() + self.retry_seconds
        while True:
            try:
                self._send(self.socket_path, report)
                self.sent.append(report["id"])
                return
            except PermanentError as err:
                log.error("bottlecap: %s; dropped", err)
            except (OSError, RuntimeError, http.client.HTTPException) as err:
                if time.monotonic() + wait < stop:
                    log.debug("bottlecap: report %s not acknowledged yet (%s); retrying", report.get("id"), err)
                    time.sleep(wait)
                    wait = min(wait * 2, 2.0)
                    continue
                log.error("bottlecap: report %s not acknowledged after %.0fs; dropped", report.get("id"), self.retry_seconds)
            self.dropped.append(report)
            return


# --- the addon ----------------------------------------------------------------

class Settings:
    """The addon's configuration, from the environment."""

    def __init__(self, env=None):
        env = os.environ if env is None else env
        home = env.get("BOT_BOTTLE_HOME") or os.path.join(os.path.expanduser("~"), ".bot-bottle")
        self.socket = env.get("BOTTLECAP_SOCKET") or os.path.join(home, "run", "bottlecap.sock")
        self.bottle = env.get("BOTTLECAP_BOTTLE", "")
        self.agent = env.get("BOTTLECAP_AGENT", "")
        self.hosts = dict(DEFAULT_HOSTS)
        for item in (env.get("BOTTLECAP_HOSTS") or "").replace(" ", ",").split(","):
            host, sep, provider = item.partition("=")
            if sep and host and provider:
                self.hosts[host.strip().lower()] = provider.strip()
        self.gate = env.get("BOTTLECAP_GATE", "1") not in ("0", "false", "no")
        self.fail_open = env.get("BOTTLECAP_FAIL_OPEN", "0") in ("1", "true", "yes")
        self.retry_seconds = float(env.get("BOTTLECAP_RETRY_SECONDS") or 3600)


def metered(method, path):
    """Whether a request is a generation call that costs tokens."""
    path = path.split("?", 1)[0]
    return method == "POST" and (path.endswith(("/messages", "/chat/completions", "/responses"))
                                 or path.endswith((":generateContent", ":streamGenerateContent")))


def fallback_id(provider, headers):
    """A report id for a response whose body names none: the provider's
    request id header (unique per response), else a random one."""
    for key in ("request-id", "x-request-id", "x-goog-request-id"):
        v = headers.get(key)
        if v and len(v) <= 200:
            return "%s-req-%s" % (provider, v)
    return "meter-" + uuid.uuid4().hex


def error_body(family, status, message):
    """The provider's own error shape, so the agent's SDK shows the message."""
    if family == ANTHROPIC:
        kind = "rate_limit_error" if status == 429 else "overloaded_error"
        return {"type": "error", "error": {"type": kind, "message": message}}
    if family == GEMINI:
        return {"error": {"code": status, "message": message,
                          "status": "RESOURCE_EXHAUSTED" if status == 429 else "UNAVAILABLE"}}
    kind = "insufficient_quota" if status == 429 else "server_error"
    return {"error": {"message": message, "type": kind, "code": kind if status == 429 else "budget_daemon_unavailable", "param": None}}


def _make_response(status, body):
    from mitmproxy import http as mhttp  # only when running inside mitmproxy
    return mhttp.Response.make(status, json.dumps(body).encode(), {"Content-Type": "application/json"})


class Addon:
    """The mitmproxy addon: gate requests, tail responses, report usage."""

    def __init__(self, settings=None, reporter=None, make_response=_make_response, verdict=None):
        self.settings = settings or Settings()
        self.reporter = reporter or Reporter(self.settings.socket, self.settings.retry_seconds)
        self.make_response = make_response
        self.verdict = verdict or self._verdict
        self._parsers = {}

    def _provider(self, flow):
        host = (flow.request.pretty_host or flow.request.host or "").lower()
        return self.settings.hosts.get(host)

    def _verdict(self, provider):
        q = urllib.parse.urlencode({"bottle": self.settings.bottle, "agent": self.settings.agent, "provider": provider})
        status, reply = call(self.settings.socket, "GET", "/v1/verdict?" + q, timeout=2.0)
        if status != 200 or not isinstance(reply, dict):
            raise RuntimeError("verdict: daemon answered %d" % status)
        return reply

    def request(self, flow):
        provider = self._provider(flow)
        if provider is None or not metered(flow.request.method, flow.request.path):
            return
        flow.request.headers["accept-encoding"] = "identity"  # the parser reads the bytes as they pass
        if format_for_path(flow.request.path) == CHAT:
            self._include_usage(flow)
        if self.settings.gate and self.settings.bottle:
            self._gate(flow, provider)

    def _gate(self, flow, provider):
        family = FAMILY.get(provider) or format_for_path(flow.request.path)
        family = ANTHROPIC if family == ANTHROPIC else GEMINI if family == GEMINI else CHAT
        try:
            v = self.verdict(provider)
        except (OSError, RuntimeError, http.client.HTTPException) as err:
            if self.settings.fail_open:
                log.warning("bottlecap: daemon unreachable (%s); forwarding (fail-open)", err)
                return
            msg = "bottlecap: the budget daemon cannot be reached; the request was refused (fail-closed)"
            flow.response = self.make_response(503, error_body(family, 503, msg))
            return
        if not v.get("allowed", False):
            msg = "bottlecap: %s budget denied: %s" % (provider, v.get("reason") or "budget exhausted")
            flow.response = self.make_response(429, error_body(family, 429, msg))

    def _include_usage(self, flow):
        try:
            body = json.loads(flow.request.content or b"")
        except ValueError:
            return
        if not isinstance(body, dict) or body.get("stream") is not True:
            return
        opts = body.get("stream_options")
        if opts is None:
            opts = body["stream_options"] = {}
        if isinstance(opts, dict) and opts.get("include_usage") is not True:
            opts["include_usage"] = True
            flow.request.content = json.dumps(body).encode()

    def responseheaders(self, flow):
        """Streams server-sent events through, tailing them for usage."""
        provider = self._provider(flow)
        if provider is None or not metered(flow.request.method, flow.request.path) or flow.response.status_code // 100 != 2:
            return
        if "text/event-stream" not in (flow.response.headers.get("content-type") or ""):
            return
        parser = self._parsers[flow.id] = UsageParser(AUTO, flow.request.path)

        def tail(chunk):
            parser.feed(chunk)
            return chunk
        flow.response.stream = tail

    def response(self, flow):
        self._report(flow)

    def error(self, flow):
        """A stream that broke off is still reported, with what was seen
        (incomplete unless its final usage event had arrived)."""
        if flow.id in self._parsers:
            self._report(flow)

    def _report(self, flow):
        provider = self._provider(flow)
        parser = self._parsers.pop(flow.id, None)
        if provider is None or flow.response is None or not metered(flow.request.method, flow.request.path):
            return
        if flow.response.status_code // 100 != 2 or (flow.response.headers.get("x-bottlecap") == "refused"):
            return
        if parser is None:
            parser = UsageParser(AUTO, flow.request.path)
            parser.feed(flow.response.content or b"")
        res = parser.result()
        self.reporter.add(self.build_report(flow, provider, res))

    def build_report(self, flow, provider, res):
        return {
            "id": res["id"] or fallback_id(provider, flow.response.headers),
            "bottle": self.settings.bottle, "agent": self.settings.agent, "provider": provider,
            "host": (flow.request.pretty_host or flow.request.host or "").lower(), "model": res["model"],
            "input_tokens": res["input_tokens"], "cache_read_tokens": res["cache_read_tokens"],
            "cache_write_tokens": res["cache_write_tokens"], "output_tokens": res["output_tokens"],
            "reasoning_tokens": res["reasoning_tokens"], "complete": bool(res["complete"]),
            "ts": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }

    def done(self):
        self.reporter.flush(timeout=5.0)


addons = [Addon()] if __name__ != "__main__" and os.environ.get("BOTTLECAP_NO_AUTOLOAD") != "1" else []

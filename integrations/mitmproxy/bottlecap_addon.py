"""bottlecap usage metering for bot-bottle's mitmproxy egress.

Load it with ``mitmdump -s bottlecap_addon.py``. For every successful
generation response from a provider host it reads the token usage (JSON
bodies and server-sent event streams, normalised as bottlecap's SPEC section
4 says) and posts a report to the bottlecap daemon's unix socket, retrying
until the daemon acknowledges it. Standard library only.

Configuration comes from the environment (see README.md):
BOTTLECAP_SOCKET, BOT_BOTTLE_HOME, BOTTLECAP_BOTTLE, BOTTLECAP_AGENT,
BOTTLECAP_HOSTS, BOTTLECAP_GATE, BOTTLECAP_FAIL_OPEN, BOTTLECAP_RETRY_SECONDS,
BOTTLECAP_GATE_TIMEOUT, BOTTLECAP_QUEUE_LIMIT.

No socket I/O runs on mitmproxy's event loop: the gate is asked with
asyncio unix streams under a timeout, reports are sent from a thread.
"""

import asyncio
import codecs
import collections
import http.client
import inspect
import json
import logging
import os
import socket
import threading
import time
import urllib.parse
import uuid
import zlib
from datetime import datetime, timezone

try:  # mitmproxy depends on both; without them br/zstd bodies are refused (README)
    import brotli
except ImportError:
    brotli = None
try:
    import zstandard
except ImportError:
    zstandard = None

log = logging.getLogger("bottlecap")

AUTO, CHAT, RESPONSES, ANTHROPIC, GEMINI = "auto", "openai-chat", "openai-responses", "anthropic", "gemini"
FORMATS = (AUTO, CHAT, RESPONSES, ANTHROPIC, GEMINI)
MAX_EVENT = 16 << 20  # an event (or whole JSON body) beyond this is skipped

# DEFAULT_HOSTS, FAMILY, METERED_SUFFIXES and ERROR_KINDS are this file's
# copy of bottlecap's provider table (budget/providers.go); the tests hold
# them to providers.json, the table written out.
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



# --- undoing Content-Encoding for the parser ----------------------------------

# DECODE_PIECE bounds what one step of decompression hands the parser, so a
# small compressed chunk that expands hugely is parsed a piece at a time.
DECODE_PIECE = 1 << 20


class UnsupportedEncoding(Exception):
    """A Content-Encoding this Python cannot undo (brotli or zstandard missing)."""


class _Zlib:
    """gzip (members back to back) or deflate (zlib-wrapped, or raw as some
    servers send it), decoded incrementally."""

    def __init__(self, gzip):
        self._gzip = gzip
        self._d = zlib.decompressobj(47 if gzip else 15)
        self._started = False

    def feed(self, data):
        if not self._gzip and not self._started and data:
            self._started = True
            if data[0] & 0x0F != 8:  # no zlib header: raw deflate
                self._d = zlib.decompressobj(-15)
        while data:
            out = self._d.decompress(data, DECODE_PIECE)
            if out:
                yield out
            data = self._d.unconsumed_tail
            if self._d.eof and self._d.unused_data:
                data = self._d.unused_data  # another gzip member follows
                self._d = zlib.decompressobj(47 if self._gzip else 15)


class _Brotli:
    def __init__(self):
        if brotli is None:
            raise UnsupportedEncoding("br (the brotli module is not installed)")
        d = brotli.Decompressor()
        self._process = getattr(d, "process", None) or d.decompress  # Google's binding, or brotlipy

    def feed(self, data):
        out = self._process(data)
        if out:
            yield out


class _Zstd:
    def __init__(self):
        if zstandard is None:
            raise UnsupportedEncoding("zstd (the zstandard module is not installed)")
        self._d = zstandard.ZstdDecompressor().decompressobj()

    def feed(self, data):
        while data:
            out = self._d.decompress(data)
            if out:
                yield out
            data = b""
            if self._d.eof and self._d.unused_data:
                data = self._d.unused_data  # another frame follows
                self._d = zstandard.ZstdDecompressor().decompressobj()


def _decoder_step(name):
    if name in ("gzip", "x-gzip"):
        return _Zlib(True)
    if name == "deflate":
        return _Zlib(False)
    if name == "br":
        return _Brotli()
    if name == "zstd":
        return _Zstd()
    if name in ("", "identity"):
        return None
    raise UnsupportedEncoding(name)


class Decoder:
    """Undoes a Content-Encoding header's codings (last applied first),
    incrementally. Raises UnsupportedEncoding for one it cannot undo."""

    def __init__(self, header):
        names = [n.strip().lower() for n in (header or "").split(",")]
        self._steps = [s for s in (_decoder_step(n) for n in reversed(names)) if s is not None]

    def feed(self, data):
        """Yields the decoded pieces of data (raises zlib.error and the
        like on a corrupt body)."""
        return self._through(0, data)

    def _through(self, i, data):
        if i == len(self._steps):
            if data:
                yield data
            return
        for piece in self._steps[i].feed(data):
            yield from self._through(i + 1, piece)


class Tap:
    """The usage of one response body as it passes: raw bytes in (as the
    upstream sent them), decoded for the parser only."""

    def __init__(self, path, content_encoding):
        self.parser = UsageParser(AUTO, path)
        self.decoder = Decoder(content_encoding)
        self.encoding = content_encoding or "identity"
        self.streamed = False  # the bytes come through flow.response.stream
        self.broken = ""  # why decoding stopped, if it did

    def feed(self, chunk):
        if self.broken or not chunk:
            return
        try:
            for piece in self.decoder.feed(chunk):
                self.parser.feed(piece)
        except Exception as err:  # zlib.error, brotli.error, zstandard.ZstdError: a corrupt body
            self.broken = "%s body could not be decoded: %s" % (self.encoding, err)

    def result(self):
        return self.parser.result()


# --- the daemon's socket ----------------------------------------------------

MAX_REPLY = 1 << 20  # a daemon reply beyond this is refused


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over the daemon's unix socket (blocking: the reporter thread
    only, never mitmproxy's event loop)."""

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


def _decode_reply(status, raw):
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, {"error": raw[:200].decode("utf-8", "replace")}


def call(socket_path, method, path, body=None, timeout=10.0, content_type="application/json"):
    """One blocking request to the daemon; returns (status, decoded JSON reply).
    body is bytes, or an object sent as JSON."""
    conn = UnixHTTPConnection(socket_path, timeout)
    try:
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        headers = {"Content-Type": content_type, "User-Agent": "bottlecap-mitmproxy"}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return _decode_reply(resp.status, resp.read(MAX_REPLY))
    finally:
        conn.close()


async def acall(socket_path, method, path, timeout):
    """One request to the daemon on the asyncio event loop (asyncio unix
    streams, never blocking the loop); the whole exchange is bounded by
    timeout. Returns (status, decoded JSON reply); raises OSError,
    asyncio.TimeoutError or ValueError."""
    async def exchange():
        reader, writer = await asyncio.open_unix_connection(socket_path)
        try:
            writer.write(("%s %s HTTP/1.1\r\nHost: bottlecap\r\nUser-Agent: bottlecap-mitmproxy\r\n"
                          "Connection: close\r\n\r\n" % (method, path)).encode())
            await writer.drain()
            raw = b""
            while len(raw) <= MAX_REPLY:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                raw += chunk
            return raw
        finally:
            writer.close()
    return parse_http_reply(await asyncio.wait_for(exchange(), timeout))


def parse_http_reply(raw):
    """(status, decoded JSON body) of a whole HTTP/1.1 response that ended
    with the connection (Content-Length, chunked, or read to the end)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("daemon reply ended before its headers did")
    lines = head.split(b"\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ValueError("daemon reply has no HTTP status line")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip().lower()
    if headers.get(b"transfer-encoding") == b"chunked":
        body = _dechunk(body)
    elif headers.get(b"content-length", b"").isdigit():
        n = int(headers[b"content-length"])
        if len(body) < n:
            raise ValueError("daemon reply ended after %d of %d bytes" % (len(body), n))
        body = body[:n]
    return _decode_reply(int(parts[1]), body)


def _dechunk(body):
    out, i = b"", 0
    while True:
        nl = body.find(b"\r\n", i)
        if nl < 0:
            raise ValueError("daemon reply: truncated chunk")
        size = int(body[i:nl].split(b";")[0] or b"x", 16)
        if size == 0:
            return out
        out += body[nl + 2: nl + 2 + size]
        i = nl + 2 + size + 2


def post_batch(socket_path, reports, timeout=10.0):
    """Sends reports as NDJSON in one POST /v1/usage; returns the daemon's
    reply once they are committed. Raises PermanentError for a refused
    batch, OSError, RuntimeError or http.client.HTTPException for anything
    worth retrying."""
    body = b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in reports)
    status, reply = call(socket_path, "POST", "/v1/usage", body, timeout, "application/x-ndjson")
    if 200 <= status < 300:
        return reply
    msg = reply.get("error", "") if isinstance(reply, dict) else ""
    if status in (400, 403, 413):
        raise PermanentError("daemon refused %d report(s): %d %s" % (len(reports), status, msg))
    raise RuntimeError("daemon answered %d %s" % (status, msg))


def post_report(socket_path, report, timeout=10.0):
    """Sends one report (see post_batch)."""
    return post_batch(socket_path, [report], timeout)


class _Entry:
    __slots__ = ("report", "deadline")

    def __init__(self, report, deadline):
        self.report, self.deadline = report, deadline


class Reporter:
    """Posts reports from a background thread (blocking I/O stays off
    mitmproxy's event loop), in order, up to MAX_BATCH per NDJSON call,
    retrying with backoff until the daemon acknowledges them (ids make
    retries safe). The queue is bounded (limit; when full the oldest report
    is dropped and logged); so are the recent id lists kept for inspection."""

    MAX_BATCH = 256
    RECENT = 1000
    FIRST_BACKOFF, MAX_BACKOFF = 0.05, 2.0

    def __init__(self, socket_path, retry_seconds=3600.0, send=post_batch, limit=10000):
        self.socket_path, self.retry_seconds, self._send, self.limit = socket_path, retry_seconds, send, limit
        self._pending = collections.deque()
        self._busy = False
        self._cv = threading.Condition()
        self.acknowledged = self.dropped_total = 0
        self.sent = collections.deque(maxlen=self.RECENT)  # ids recently acknowledged
        self.dropped = collections.deque(maxlen=self.RECENT)  # reports recently dropped
        self._thread = threading.Thread(target=self._run, name="bottlecap-reporter", daemon=True)
        self._thread.start()

    def add(self, report):
        """Queues a report; never blocks on I/O."""
        with self._cv:
            if len(self._pending) >= self.limit:
                old = self._pending.popleft().report
                self._drop(old)
                log.error("bottlecap: report queue full (%d); dropped the oldest report %s", self.limit, old.get("id"))
            self._pending.append(_Entry(report, time.monotonic() + self.retry_seconds))
            self._cv.notify_all()

    def full(self):
        with self._cv:
            return len(self._pending) >= self.limit

    def __len__(self):
        with self._cv:
            return len(self._pending)

    def flush(self, timeout=None):
        """Waits until every queued report was acknowledged or dropped."""
        with self._cv:
            return self._cv.wait_for(lambda: not self._pending and not self._busy, timeout)

    def _drop(self, report):
        self.dropped.append(report)
        self.dropped_total += 1

    def _run(self):
        wait = self.FIRST_BACKOFF
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._pending)
                batch = [self._pending[i] for i in range(min(len(self._pending), self.MAX_BATCH))]
                self._busy = True
            done, err = self._deliver(batch)
            with self._cv:
                self._remove(batch[:done])
                if err is not None:
                    self._expire(err)
                self._busy = False
                self._cv.notify_all()
            if err is None:
                wait = self.FIRST_BACKOFF
                continue
            log.debug("bottlecap: %d report(s) not acknowledged yet (%s); retrying", len(batch) - done, err)
            time.sleep(wait)
            wait = min(wait * 2, self.MAX_BACKOFF)

    def _deliver(self, batch):
        """Sends batch; returns how many entries from its front are done
        with, and the error that stopped the rest. A refused batch is
        retried one report at a time to find (and drop) the refused one."""
        try:
            self._send(self.socket_path, [e.report for e in batch])
        except PermanentError as err:
            if len(batch) == 1:
                log.error("bottlecap: report %s refused by the daemon; dropped: %s", batch[0].report.get("id"), err)
                with self._cv:
                    self._drop(batch[0].report)
                return 1, None
            for i, e in enumerate(batch):
                n, err = self._deliver([e])
                if err is not None:
                    return i, err
            return len(batch), None
        except (OSError, RuntimeError, ValueError, http.client.HTTPException) as err:
            return 0, err
        with self._cv:
            self.acknowledged += len(batch)
            self.sent.extend(e.report.get("id") for e in batch)
        return len(batch), None

    def _remove(self, entries):
        """Removes entries from the front (add may have dropped some of them)."""
        for e in entries:
            if self._pending and self._pending[0] is e:
                self._pending.popleft()

    def _expire(self, err):
        now = time.monotonic()
        while self._pending and self._pending[0].deadline < now:
            r = self._pending.popleft().report
            self._drop(r)
            log.error("bottlecap: report %s not acknowledged after %.0fs (%s); dropped", r.get("id"), self.retry_seconds, err)


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
        self.retry_seconds = _number(env, "BOTTLECAP_RETRY_SECONDS", 3600.0)
        self.gate_timeout = _number(env, "BOTTLECAP_GATE_TIMEOUT", 2.0)
        self.queue_limit = int(_number(env, "BOTTLECAP_QUEUE_LIMIT", 10000))


def _number(env, name, default):
    raw = env.get(name) or ""
    if not raw:
        return default
    try:
        v = float(raw)
    except ValueError:
        v = -1
    if v <= 0:
        raise ValueError("%s: %r is not a positive number" % (name, raw))
    return v


# METERED_SUFFIXES end the paths of the generation calls that cost tokens,
# behind any host and base path (chatgpt.com/backend-api/codex/responses).
METERED_SUFFIXES = ("/messages", "/chat/completions", "/responses", ":generateContent", ":streamGenerateContent")


def metered(method, path):
    """Whether a request is a generation call that costs tokens."""
    path = path.split("?", 1)[0]
    return method == "POST" and path.endswith(METERED_SUFFIXES)


def fallback_id(provider, headers):
    """A report id for a response whose body names none: the provider's
    request id header (unique per response), else a random one."""
    for key in ("request-id", "x-request-id", "x-goog-request-id"):
        v = headers.get(key)
        if v and len(v) <= 200:
            return "%s-req-%s" % (provider, v)
    return "meter-" + uuid.uuid4().hex


ERROR_KINDS = {
    # status: (anthropic type, gemini status, openai type, openai code)
    426: ("invalid_request_error", "FAILED_PRECONDITION", "invalid_request_error", "websocket_not_metered"),
    429: ("rate_limit_error", "RESOURCE_EXHAUSTED", "insufficient_quota", "insufficient_quota"),
    502: ("api_error", "UNAVAILABLE", "server_error", "upstream_not_metered"),
    503: ("overloaded_error", "UNAVAILABLE", "server_error", "budget_daemon_unavailable"),
}


def error_body(family, status, message):
    """The provider's own error shape, so the agent's SDK shows the message."""
    anthropic, gemini, openai, code = ERROR_KINDS.get(status, ERROR_KINDS[503])
    if family == ANTHROPIC:
        return {"type": "error", "error": {"type": anthropic, "message": message}}
    if family == GEMINI:
        return {"error": {"code": status, "message": message, "status": gemini}}
    return {"error": {"message": message, "type": openai, "code": code, "param": None}}


# REFUSAL_HEADERS go on every answer the addon makes itself: the official
# SDKs retry 429 and 5xx unless told not to, which would repeat a denied
# call two more times.
REFUSAL_HEADERS = {"Content-Type": "application/json", "x-should-retry": "false", "x-bottlecap": "refused"}


def _make_response(status, body, headers):
    from mitmproxy import http as mhttp  # only when running inside mitmproxy
    return mhttp.Response.make(status, json.dumps(body).encode(), headers)


def denied_message(provider, v):
    """Names the budget that tripped: scope, id, provider, limit, used (and
    held, when the daemon reports allowances)."""
    reason = v.get("reason") or "budget exhausted"
    budget = "scope %s %s, provider %s, limit %s, used %s" % (
        v.get("scope", "?"), v.get("scope_id") or "-", v.get("provider") or provider, v.get("limit", "?"), v.get("used", "?"))
    if v.get("held"):
        budget += ", held %s" % v["held"]
    return "bottlecap: %s budget denied: %s (budget: %s)" % (provider, reason, budget)


def _family(provider, path):
    f = FAMILY.get(provider) or format_for_path(path)
    return ANTHROPIC if f == ANTHROPIC else GEMINI if f == GEMINI else CHAT


def _is_upgrade(headers):
    return bool(headers.get("upgrade")) or "upgrade" in (headers.get("connection") or "").lower()


class Addon:
    """The mitmproxy addon: gate requests, tail responses, report usage."""

    def __init__(self, settings=None, reporter=None, make_response=_make_response, verdict=None):
        self.settings = settings or Settings()
        self.reporter = reporter or Reporter(self.settings.socket, self.settings.retry_seconds,
                                             limit=self.settings.queue_limit)
        self.make_response = make_response
        self.verdict = verdict or self._verdict
        self.stream_large_bodies = False  # mitmproxy's option of that name is set
        self._taps = {}

    def configure(self, updated):
        """Notes whether mitmproxy may stream bodies itself (then every
        metered response is tailed as it passes)."""
        try:
            from mitmproxy import ctx
            self.stream_large_bodies = bool(ctx.options.stream_large_bodies)
        except (ImportError, AttributeError):
            pass

    def _provider(self, flow):
        host = (flow.request.pretty_host or flow.request.host or "").lower()
        return self.settings.hosts.get(host)

    async def _verdict(self, provider):
        q = urllib.parse.urlencode({"bottle": self.settings.bottle, "agent": self.settings.agent, "provider": provider})
        status, reply = await acall(self.settings.socket, "GET", "/v1/verdict?" + q, self.settings.gate_timeout)
        if status != 200 or not isinstance(reply, dict):
            msg = reply.get("error", "") if isinstance(reply, dict) else ""
            raise RuntimeError("verdict: daemon answered %d %s" % (status, msg))
        return reply

    def _refuse(self, flow, family, status, message):
        flow.response = self.make_response(status, error_body(family, status, message), dict(REFUSAL_HEADERS))

    async def requestheaders(self, flow):
        """Refuses upgrades on provider hosts and asks the gate, before any
        byte of the request goes upstream (mitmproxy may stream the body)."""
        provider = self._provider(flow)
        if provider is None or flow.response is not None:
            return
        family = _family(provider, flow.request.path)
        if _is_upgrade(flow.request.headers):
            self._refuse(flow, family, 426, "bottlecap: WebSocket and other upgrades to %s are refused because "
                         "bottlecap cannot meter them; use HTTP (server-sent events) instead" % provider)
            return
        if not metered(flow.request.method, flow.request.path):
            return
        flow.request.headers["accept-encoding"] = "identity"  # the parser reads the bytes as they pass
        if self.settings.gate and self.settings.bottle:
            await self._gate(flow, provider, family)
        if flow.response is not None and getattr(flow.request, "stream", None):
            # mitmproxy already chose to stream this body upstream; a
            # response cannot be set on it, so it is killed instead.
            log.warning("bottlecap: refused a request whose body mitmproxy streams; closing it without an answer")
            flow.response = None
            flow.kill()

    async def _gate(self, flow, provider, family):
        if self._reporter_full() and not self.settings.fail_open:
            self._refuse(flow, family, 503, "bottlecap: usage reports are backing up (the budget daemon is not "
                         "acknowledging them); the request was refused (fail-closed)")
            return
        try:
            v = self.verdict(provider)
            if inspect.isawaitable(v):
                v = await v
        except (OSError, RuntimeError, ValueError, asyncio.TimeoutError, http.client.HTTPException) as err:
            why = "it did not answer in time" if isinstance(err, asyncio.TimeoutError) else str(err) or type(err).__name__
            if self.settings.fail_open:
                log.warning("bottlecap: daemon unreachable (%s); forwarding (fail-open)", why)
                return
            log.warning("bottlecap: daemon unreachable (%s); refusing (fail-closed)", why)
            self._refuse(flow, family, 503, "bottlecap: the budget daemon cannot be reached (%s); the request was "
                         "refused (fail-closed)" % why)
            return
        if not v.get("allowed", False):
            self._refuse(flow, family, 429, denied_message(provider, v))

    def _reporter_full(self):
        full = getattr(self.reporter, "full", None)
        return bool(full and full())

    def request(self, flow):
        provider = self._provider(flow)
        if provider is None or flow.response is not None or not metered(flow.request.method, flow.request.path):
            return
        if format_for_path(flow.request.path) == CHAT:
            self._include_usage(flow)

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

    def _metered_response(self, flow):
        return (self._provider(flow) is not None and flow.response is not None
                and metered(flow.request.method, flow.request.path)
                and flow.response.status_code // 100 == 2 and flow.response.headers.get("x-bottlecap") != "refused")

    def responseheaders(self, flow):
        """Sets up the usage tap. Server-sent events, and any body mitmproxy
        streams itself (stream_large_bodies), are tailed as they pass
        (flow.response.stream; the tail decodes and parses, no I/O);
        other bodies are read whole in `response`."""
        if not self._metered_response(flow):
            return
        try:
            tap = Tap(flow.request.path, flow.response.headers.get("content-encoding"))
        except UnsupportedEncoding as err:
            self._taps[flow.id] = err
            if not self.settings.fail_open:
                flow.response.stream = False  # read it whole, then replace it in `response`
            return
        self._taps[flow.id] = tap
        sse = "text/event-stream" in (flow.response.headers.get("content-type") or "")
        if not (sse or flow.response.stream or self.stream_large_bodies):
            return
        prev = flow.response.stream if callable(flow.response.stream) else None
        tap.streamed = True

        def tail(chunk):
            tap.feed(chunk)
            return prev(chunk) if prev else chunk
        flow.response.stream = tail

    def response(self, flow):
        self._report(flow)

    def error(self, flow):
        """A stream that broke off is still reported, with what was seen
        (incomplete unless its final usage event had arrived)."""
        if isinstance(self._taps.get(flow.id), Tap) and self._taps[flow.id].streamed:
            self._report(flow)
        else:
            self._taps.pop(flow.id, None)

    def _report(self, flow):
        tap = self._taps.pop(flow.id, None)
        if not self._metered_response(flow):
            return
        provider = self._provider(flow)
        if isinstance(tap, UnsupportedEncoding):
            self._undecodable(flow, provider, tap)
            return
        if tap is None:
            tap = Tap(flow.request.path, flow.response.headers.get("content-encoding"))
        if not tap.streamed:
            raw = getattr(flow.response, "raw_content", None)
            tap.feed(raw if raw is not None else flow.response.content or b"")
        res = tap.result()
        if tap.broken:
            log.error("bottlecap: %s response from %s: %s; reported what was parsed, as incomplete",
                      provider, flow.request.pretty_host, tap.broken)
            res["complete"] = False
        self.reporter.add(self.build_report(flow, provider, res))

    def _undecodable(self, flow, provider, err):
        """An upstream answered in a Content-Encoding this Python cannot undo
        (Accept-Encoding: identity was asked): the tokens cannot be counted."""
        if self.settings.fail_open:
            log.error("bottlecap: %s response from %s is encoded as %s; its usage was NOT counted (fail-open)",
                      provider, flow.request.pretty_host, err)
            return
        log.error("bottlecap: %s response from %s is encoded as %s; replaced by a 502 so it is not used "
                  "unmetered (fail-closed)", provider, flow.request.pretty_host, err)
        self._refuse(flow, _family(provider, flow.request.path), 502,
                     "bottlecap: the upstream answered in an encoding this proxy cannot decode (%s), so its usage "
                     "cannot be counted; the response was withheld (fail-closed)" % err)

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

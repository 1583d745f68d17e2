"""bottlecap usage metering for bot-bottle's mitmproxy egress.

Load it with ``mitmdump -s bottlecap_addon.py``. Before a generation request
to a provider host goes upstream it estimates the request's input tokens and
admits it only against an allowance the daemon granted (SPEC section 11);
as an event stream passes it counts the output and ends the stream with an
error event in the provider's format when the budget can pay no more or the
bottle is cut off. For every successful generation response it reads the
token usage (JSON bodies and server-sent event streams, normalised as
bottlecap's SPEC section 4 says) and posts a report to the bottlecap
daemon's unix socket, retrying until the daemon acknowledges it. Standard
library only.

Configuration comes from the environment (see README.md):
BOTTLECAP_SOCKET, BOT_BOTTLE_HOME, BOTTLECAP_BOTTLE, BOTTLECAP_AGENT,
BOTTLECAP_HOSTS, BOTTLECAP_GATE, BOTTLECAP_ALLOWANCES, BOTTLECAP_FAIL_OPEN,
BOTTLECAP_RETRY_SECONDS, BOTTLECAP_GATE_TIMEOUT, BOTTLECAP_QUEUE_LIMIT,
BOTTLECAP_PASS_UNMETERED.

A generation call is metered under any spelling an upstream may fold to
it (doubled, trailing or escaped slashes, "." and "..", ";params", letter
case) and sent on as the provider table spells it; only a POST generates,
and a request that could still make one (a PUT, a GET with a body) is
refused. A request to a provider call that spends tokens bottlecap does not
meter (batches, embeddings, images, audio, realtime sessions, agents the
provider runs itself: UNMETERED) is refused with 403 before it goes
upstream, unless BOTTLECAP_PASS_UNMETERED names it.

No blocking socket I/O runs on mitmproxy's event loop: the gate, the
allowances and the bottle's events use asyncio unix streams under a
timeout, reports are sent from a thread (and at shutdown, allowances are
released with a short blocking call).
"""

import asyncio
import codecs
import collections
import http.client
import inspect
import json
import logging
import math
import os
import posixpath
import re
import socket
import threading
import time
import urllib.parse
import uuid
import zlib
from datetime import datetime, timedelta, timezone

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

# DEFAULT_HOSTS, FAMILY, METERED_SUFFIXES, CHATGPT_PREFIXES, UNMETERED, SHAPE
# and ERROR_KINDS are this file's copy of bottlecap's provider table (budget/providers.go);
# the tests hold them to providers.json, the table written out.
DEFAULT_HOSTS = {
    "api.anthropic.com": "claude",
    "api.openai.com": "codex",
    "chatgpt.com": "codex",
    "generativelanguage.googleapis.com": "gemini",
    "cloudcode-pa.googleapis.com": "gemini",  # Code Assist: Gemini CLI signed in with Google
}
FAMILY = {"claude": ANTHROPIC, "codex": CHAT, "gemini": GEMINI}
# CHATGPT_PREFIXES begin the paths of ChatGPT's backend, where Codex signed
# in with ChatGPT posts (chatgpt.com/backend-api/codex/responses): OpenAI's
# wire format, with the backend's own error type for a spent budget.
CHATGPT, CHATGPT_PREFIXES = "chatgpt", ("/backend-api/",)


def format_for_path(path):
    """The format a request path implies, or AUTO."""
    path = path.split("?", 1)[0].lower()
    if ":generatecontent" in path or ":streamgeneratecontent" in path:
        return GEMINI
    if path.endswith("/completions") or path.endswith(":chatcompletions"):
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


def _gemini_telling(e):
    return _dict(e.get("usageMetadata")) is not None or (isinstance(e.get("candidates"), list) and e["candidates"]) \
        or _dict(e.get("promptFeedback")) is not None or _str(e.get("modelVersion")) or _str(e.get("responseId"))


def _gemini_inner(e):
    """The Gemini response an event carries: itself, or the one Code Assist
    wraps in "response" (gemini-cli's CaGenerateContentResponse)."""
    inner = _dict(e.get("response"))
    return inner if not _gemini_telling(e) and inner is not None and _gemini_telling(inner) else e


def _detect(e, typ):
    if _gemini_telling(_gemini_inner(e)):
        return GEMINI
    obj = _str(e.get("object"))
    if typ.startswith("response.") or obj in ("response", "response.compaction"):
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
        self.passed = 0  # UTF-8 bytes of output text in the stream's deltas

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
        self.passed += DELTAS[self.format](e, typ)

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
        inner = _gemini_inner(e)
        self._identify(inner.get("responseId") or e.get("traceId"), inner.get("modelVersion"))
        e = inner
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
                    model=self.model, id=self.id, delta_bytes=self.passed)


# --- output text in stream deltas ---------------------------------------------
# What a stream's events add to the answer: text, tool-call arguments,
# thinking, refusals and code, in UTF-8 bytes (the members meter/usage's
# deltaBytes counts in stream events). The addon counts output from them
# while a stream passes (the provider's usage replaces the count when it
# arrives), and a stream that ends early is charged no less than them.

def _utf8(v):
    return len(v.encode("utf-8", "replace")) if isinstance(v, str) else 0


def _list(v):
    return v if isinstance(v, list) else []


def _chat_deltas(e, _typ):
    n = 0
    for c in _list(e.get("choices")):
        d = _dict(_dict(c) and c.get("delta")) or {}
        n += _utf8(d.get("content")) + _utf8(d.get("refusal")) + _utf8(d.get("reasoning_content")) + _utf8(d.get("reasoning"))
        for call in _list(d.get("tool_calls")) + [{"function": d.get("function_call")}]:
            f = _dict(_dict(call) and call.get("function")) or {}
            n += _utf8(f.get("name")) + _utf8(f.get("arguments"))
    return n


def _responses_deltas(e, typ):
    # response.output_text.delta, response.function_call_arguments.delta,
    # response.reasoning_summary_text.delta, ...; audio deltas are base64.
    if typ.endswith(".delta") and typ != "response.audio.delta":
        return _utf8(e.get("delta"))
    return 0


def _anthropic_deltas(e, typ):
    d = _dict(e.get("delta")) if typ == "content_block_delta" else None
    if d is None:
        return 0
    return _utf8(d.get("text")) + _utf8(d.get("partial_json")) + _utf8(d.get("thinking")) + _utf8(d.get("content"))


def _gemini_deltas(e, _typ):
    n = 0
    for c in _list(_gemini_inner(e).get("candidates")):
        for part in _list((_dict(_dict(c) and c.get("content")) or {}).get("parts")):
            part = _dict(part) or {}
            call = _dict(part.get("functionCall")) or {}
            n += _utf8(part.get("text")) + _utf8(call.get("name"))
            n += _utf8((_dict(part.get("executableCode")) or {}).get("code"))
            if call.get("args") is not None:
                n += len(json.dumps(call["args"], ensure_ascii=False).encode())
    return n


DELTAS = {CHAT: _chat_deltas, RESPONSES: _responses_deltas, ANTHROPIC: _anthropic_deltas, GEMINI: _gemini_deltas}


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

    def progress(self):
        """The usage of the events that ended so far (cheaper than result:
        the event in progress is not parsed)."""
        return self._st.result()

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


# --- the pre-flight estimate ----------------------------------------------------
# Before a metered request goes upstream its input tokens are estimated from
# its body, offline (SPEC section 11): the bytes of what the model reads
# (message text, system prompts, tool definitions, calls and results; keys
# and numbers too, JSON escapes as written, as the Go estimator counts
# them) at its tokenizer family's ratio, plus a fixed price per image or
# document and for the hidden prompt that tools add. Reports then calibrate
# it per (provider, model). It is meter/estimate's method with its priors,
# and a simpler calibration (Estimator).

# PRIORS per tokenizer family, the Go estimator's: bytes a token before any
# report (a little below what the family averages on coding-agent bodies),
# what one image or document costs, and the hidden system prompt a family
# adds when a request defines tools.
PRIORS = {  # family: (bytes per token, attachment tokens, tools tokens)
    "openai": (3.6, 2500, 0),  # o200k: Go source 3.5 bytes a token, English 4.2; gpt-4.1 images up to ~2,500
    "anthropic": (3.0, 2000, 500),  # Claude cuts the same text 10-30% finer; images ~1,600; tools ~350
    "gemini": (3.6, 1600, 0),  # SentencePiece, close to o200k; 258 tokens a 768-pixel tile
    "": (3.0, 2500, 500),  # unknown: the most conservative of them
}
# PRIOR_MARGIN: an estimate no report has calibrated yet errs high by a fifth.
PRIOR_MARGIN = 0.2
# A body that is not a JSON object counts a token every 3 bytes.
UNPARSEABLE_BYTES_PER_TOKEN = 3.0

# INPUT_FIELDS are the top-level fields of each request format the model
# reads; an unknown format counts the whole body.
INPUT_FIELDS = {
    CHAT: ("messages", "tools", "functions", "response_format", "prompt", "suffix"),  # prompt, suffix: legacy Completions
    RESPONSES: ("instructions", "input", "tools", "text"),
    ANTHROPIC: ("system", "messages", "tools"),
    GEMINI: ("systemInstruction", "system_instruction", "contents", "tools"),
}
# Parts that carry an attachment: a "type" (Anthropic image/document,
# OpenAI image_url/input_image/input_file/file/input_audio) or a Gemini key.
MEDIA_TYPES = {"image", "document", "image_url", "input_image", "input_file", "file", "input_audio"}
MEDIA_KEYS = {"inlineData", "inline_data", "fileData", "file_data"}
# CHAINED_FIELDS continue context the provider keeps, whose size the body
# does not show (a previous_response_id the addon saw is known, below).
CHAINED_FIELDS = ("conversation", "cachedContent", "cached_content")


def family_of(fmt, model):
    """The tokenizer family: from the model's name when it tells (a gateway
    may serve Claude over OpenAI's API), else from the wire format."""
    m = model.lower().rsplit("/", 1)[-1]
    if m.startswith("claude"):
        return "anthropic"
    if m.startswith(("gemini", "gemma")):
        return "gemini"
    if m.startswith(("gpt", "chatgpt", "codex")) or (len(m) > 1 and m[0] == "o" and m[1] in "123456789"):
        return "openai"
    return {CHAT: "openai", RESPONSES: "openai", ANTHROPIC: "anthropic", GEMINI: "gemini"}.get(fmt, "")


def _written(s):
    """A string's bytes as JSON writes it (escapes included), quotes not."""
    return len(json.dumps(s, ensure_ascii=False).encode("utf-8", "replace")) - 2


def _measure(value):
    """(bytes of text, attachments) in a decoded JSON fragment, walked
    without recursion (a deeply nested body cannot exhaust the stack)."""
    nbytes, media, stack = 0, 0, [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if v.startswith("data:") and ";base64," in v[:100]:
                media += 1
            else:
                nbytes += _written(v)
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, (int, float)):
            nbytes += len(repr(v))
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            if v.get("type") in MEDIA_TYPES:
                media += 1
                continue
            for k, item in v.items():
                nbytes += _written(k)
                if k in MEDIA_KEYS:
                    media += 1
                else:
                    stack.append(item)
    return nbytes, media


def _request_model(req, path):
    model = _str(req.get("model"))
    if not model and "/models/" in path:  # Gemini: /v1beta/models/gemini-2.5-pro:generateContent
        model = path.split("/models/", 1)[1].split(":", 1)[0].split("?", 1)[0]
    return model[:200]


class _Obj(dict):
    """A decoded JSON object that keeps every value of a key it had more
    than once (dups; None when it had none): parsers differ in which one
    they keep, so an output cap stated twice counts at the larger."""

    __slots__ = ("dups",)


def _obj(pairs):
    d = _Obj(pairs)
    d.dups = None
    if len(d) != len(pairs):
        d.dups = collections.defaultdict(list)
        for k, v in pairs:
            d.dups[k].append(v)
    return d


def _parse_request(body):
    try:
        req = json.loads(body or b"", object_pairs_hook=_obj)
    except (ValueError, RecursionError):
        return None
    return req if isinstance(req, dict) else None


# --- the output cap ---------------------------------------------------------------
# A request may state the most output it lets the model generate, and its
# provider stops there, reasoning and thinking included: Anthropic's
# max_tokens, OpenAI Chat's max_completion_tokens (or max_tokens, also
# legacy Completions') per choice (n, or best_of when more), the Responses
# API's max_output_tokens (not remote compaction's, which takes none),
# Gemini's generationConfig.maxOutputTokens per candidate. A request
# stating less than OUTPUT_SLICE reserves only that (the Go meter's rule,
# meter/estimate/cap.go). The cap is trusted only as the provider would
# read it: anything but a positive integer up to MAX_STATED_CAP, or a key
# that a parser matching names case-insensitively (Go's encoding/json) may
# take for a cap field, leaves the request with no cap (the usual slice).

MAX_STATED_CAP = 1 << 24
TOP_CAP_KEYS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "n", "best_of", "generationConfig",
                "generation_config")
GEN_CAP_KEYS = ("maxOutputTokens", "max_output_tokens", "candidateCount", "candidate_count")


def _values(obj, key):
    """Every value obj had for key, duplicates included."""
    if key not in obj:
        return []
    dups = getattr(obj, "dups", None)
    return list(dups[key]) if dups and key in dups else [obj[key]]


def _stated(obj, keys):
    """The number obj states under keys: the largest of their values, 0
    when it has none of them, None when one is not a cap (0, negative,
    a float, a string, a boolean, null, beyond MAX_STATED_CAP)."""
    n = 0
    for k in keys:
        for v in _values(obj, k):
            if type(v) is not int or not 0 < v <= MAX_STATED_CAP:
                return None
            n = max(n, v)
    return n


def _unsure(obj, names):
    """obj has a key a provider's parser may take for one of names though
    it is not one of them: the same but for case."""
    folded = {n.casefold() for n in names}
    return any(k not in names and k.casefold() in folded for k in obj)


def _per_choice(cap, choices):
    if cap is None or choices is None:
        return 0
    return cap * max(choices, 1)


def output_cap(fmt, req):
    """The most output tokens a decoded request body lets the model
    generate in format fmt, or 0 when it states none the addon trusts."""
    if req is None or _unsure(req, TOP_CAP_KEYS):
        return 0
    if fmt == ANTHROPIC:
        return _stated(req, ("max_tokens",)) or 0
    if fmt == RESPONSES:
        return _stated(req, ("max_output_tokens",)) or 0
    if fmt == CHAT:  # OpenAI refuses both; a gateway may honour either: the larger bounds
        # each of n choices, and legacy Completions generates best_of candidates to return n
        return _per_choice(_stated(req, ("max_tokens", "max_completion_tokens")), _stated(req, ("n", "best_of")))
    if fmt == GEMINI:
        gens = _values(req, "generationConfig") + _values(req, "generation_config")
        if not all(isinstance(g, dict) and not _unsure(g, GEN_CAP_KEYS) for g in gens):
            return 0
        caps = [_stated(g, ("maxOutputTokens", "max_output_tokens")) for g in gens]
        choices = [_stated(g, ("candidateCount", "candidate_count")) for g in gens]
        if None in caps or None in choices:
            return 0
        return _per_choice(max(caps, default=0), max(choices, default=0))
    return 0


def estimate_body(body, fmt, path="", req=None):
    """(input tokens by the family's prior, model) of a request body,
    before calibration and margin; req is the body decoded, if it was."""
    if req is None:
        req = _parse_request(body)
    if req is None:
        return int(math.ceil(len(body or b"") / UNPARSEABLE_BYTES_PER_TOKEN)), ""
    model = _request_model(req, path)
    if fmt == GEMINI and "contents" not in req and isinstance(req.get("request"), dict):
        req = req["request"]  # Code Assist wraps the request: {"model", "project", "request": {...}}
    per_byte, attachment, tools = PRIORS[family_of(fmt, model)]
    fields = INPUT_FIELDS.get(fmt)
    nbytes, media = _measure([req.get(f) for f in fields] if fields else req)
    fixed = media * attachment + (tools if req.get("tools") or req.get("functions") else 0)
    return int(math.ceil(nbytes / per_byte)) + fixed, model


def output_tokens(fmt, model, nbytes):
    """Output tokens in nbytes of a stream's deltas, by the family's prior."""
    return int(math.ceil(nbytes / PRIORS[family_of(fmt, model)][0])) if nbytes > 0 else 0


class Estimate:
    """A request's input estimate: tokens to reserve (calibrated, raw
    tokens), the prior's figure it came from, the model, whether the
    provider's count of it may teach the estimator (not for a body that is
    no JSON, nor one continuing context the addon has not seen), and the
    output cap the body states (raw tokens, 0: none; see output_cap)."""

    __slots__ = ("tokens", "prior", "model", "learns", "cap")

    def __init__(self, tokens, prior, model, learns, cap=0):
        self.tokens, self.prior, self.model, self.learns, self.cap = tokens, prior, model, learns, cap


class Estimator:
    """Input estimates calibrated per (provider, model). factor is how many
    input tokens the provider counted per token of the prior's estimate;
    until a report says, it is 1 + PRIOR_MARGIN. The first report sets it
    (within a factor of 4 of the prior); later ones move it halfway towards
    an observation that was higher and a twentieth of the way towards a
    lower one, so it settles near the high end of what it sees: the
    estimate errs high. It also remembers what stored OpenAI responses
    hold, for requests that continue them by previous_response_id."""

    RISE, FALL, FIRST_STEP = 0.5, 0.05, 4.0
    LOW, HIGH = 0.25, 8.0  # one strange report moves the factor no further
    REMEMBERED = 1000  # (provider, model) pairs, and stored responses

    def __init__(self):
        self._factor = collections.OrderedDict()
        self._responses = collections.OrderedDict()

    def factor(self, provider, model):
        return self._factor.get((provider, model), 1.0 + PRIOR_MARGIN)

    def estimate(self, provider, fmt, path, body):
        """The Estimate of a request body."""
        req, learns = _parse_request(body), True
        prior, model = estimate_body(body, fmt, path, req)
        if req is None:
            learns = False
        elif any(req.get(k) or (_dict(req.get("request")) or {}).get(k) for k in CHAINED_FIELDS):
            learns = False
        elif _str(req.get("previous_response_id")):
            held = self._responses.get((provider, req["previous_response_id"]))
            learns = held is not None
            prior += held or 0
        # Remote compaction takes no max_output_tokens: one sent there bounds nothing.
        cap = 0 if path.split("?", 1)[0].endswith("/compact") else output_cap(fmt, req)
        return Estimate(int(math.ceil(prior * self.factor(provider, model))), prior, model, learns, cap)

    def length(self, provider, nbytes):
        """The Estimate of a body mitmproxy streams: only its length is known."""
        prior = int(math.ceil(nbytes / UNPARSEABLE_BYTES_PER_TOKEN))
        return Estimate(int(math.ceil(prior * self.factor(provider, ""))), prior, "", False)

    def learn(self, provider, est, actual):
        """Moves the factor towards actual / est.prior: the provider's input
        count (input + cache read + cache write) for a request estimated as est."""
        if not est.learns or est.prior <= 0 or actual <= 0:
            return
        key, seen = (provider, est.model), actual / est.prior
        if key in self._factor:
            f = self._factor.pop(key)
            f += (self.RISE if seen > f else self.FALL) * (seen - f)
        else:
            prior = 1.0 + PRIOR_MARGIN
            f = min(max(seen, prior / self.FIRST_STEP), prior * self.FIRST_STEP)
        self._factor[key] = min(max(f, self.LOW), self.HIGH)
        _bound(self._factor, self.REMEMBERED)

    def responded(self, provider, rid, total):
        """Remembers what a stored response holds (its input and output), so
        that a request continuing it is estimated with that context."""
        if rid:
            self._responses.pop((provider, rid), None)
            self._responses[(provider, rid)] = total
            _bound(self._responses, self.REMEMBERED)


def _bound(d, n):
    while len(d) > n:
        d.popitem(last=False)


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

    def progress(self):
        return self.parser.progress()


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


async def acall(socket_path, method, path, timeout, body=None):
    """One request to the daemon on the asyncio event loop (asyncio unix
    streams, never blocking the loop); the whole exchange is bounded by
    timeout. body, if any, is sent as JSON. Returns (status, decoded JSON
    reply); raises OSError, asyncio.TimeoutError or ValueError."""
    payload = b"" if body is None else json.dumps(body).encode()
    head = "%s %s HTTP/1.1\r\nHost: bottlecap\r\nUser-Agent: bottlecap-mitmproxy\r\nConnection: close\r\n" % (method, path)
    if body is not None:
        head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(payload)

    async def exchange():
        reader, writer = await asyncio.open_unix_connection(socket_path)
        try:
            writer.write(head.encode() + b"\r\n" + payload)
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


# --- allowances -----------------------------------------------------------------
# A meter spends only against an allowance the daemon granted (SPEC section
# 11). The addon keeps one per (bottle, agent, provider) as a pool: each
# request reserves its input estimate plus an output slice from it, asking
# the daemon for what the pool lacks; reports name the allowance and settle
# what they spent; an idle pool gives its allowance back.

# OUTPUT_SLICE is what a request reserves for its output at admission, in
# counted tokens, and what a stream asks for each time it runs low: a few
# thousand, not max_tokens (reserving the worst case up front is what makes
# gateways deny agents with large contexts). The Go meter's figure.
OUTPUT_SLICE = 4096
# A stream whose request states an output cap of n tokens may pass n *
# CAP_BYTES_PER_TOKEN + CAP_SLACK_BYTES bytes of deltas: a provider that
# honours the cap never comes near it (3-5 bytes a token on text and code);
# past it the upstream ignores the cap the request was admitted on, and the
# stream is cut. The Go meter's figures.
CAP_BYTES_PER_TOKEN = 8
CAP_SLACK_BYTES = 512
# IDLE_RELEASE: seconds a pool with nothing in flight keeps its allowance
# before giving it back (a burst of requests shares one; an idle addon
# holds nothing for long).
IDLE_RELEASE = 2.0
# DEFAULT_TTL is the daemon's default allowance_ttl, used until a reply
# says when the allowance expires.
DEFAULT_TTL = 30.0
ACTIVE_STATES = ("active", "warned")  # a bottle in any other state spends nothing


class DaemonError(Exception):
    """The daemon could not be reached, or answered with an error."""


def _reply_error(what, status, reply):
    msg = reply.get("error", "") if isinstance(reply, dict) else ""
    return "%s: daemon answered %d %s" % (what, status, msg)


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def seconds_until(ts, default):
    """Seconds from now to an RFC 3339 time as Go writes it (nanoseconds,
    Z or an offset); default when it is not one."""
    m = _RFC3339.match(ts) if isinstance(ts, str) else None
    if m is None:
        return default
    at = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    if m.group(3) != "Z":
        sign = 1 if m.group(3)[0] == "+" else -1
        at -= sign * timedelta(hours=int(m.group(3)[1:3]), minutes=int(m.group(3)[4:6]))
    left = (at - datetime.now(timezone.utc)).total_seconds() + float(m.group(2) or 0)
    return max(left, 0.0)


class Pool:
    """The allowance of one (bottle, agent, provider), shared by the
    requests in flight. held is what the allowance holds, less what
    finished requests spent (their reports settle it at the daemon);
    reserved is what the requests in flight set aside from it. Requests
    reserve and settle on mitmproxy's event loop; one asks the daemon at a
    time. daemon is an async callable (method, path, JSON body) ->
    (status, reply) that raises DaemonError."""

    def __init__(self, bottle, agent, provider, daemon, clock=time.monotonic):
        self.bottle, self.agent, self.provider = bottle, agent, provider
        self._daemon, self._clock = daemon, clock
        self.id = None
        self.held = self.reserved = 0
        self.weight = 1.0  # counted tokens per raw token, as the daemon says
        self.verdict = {}  # the daemon's last verdict for this triple
        self.ttl, self.renew_at, self.idle_since = DEFAULT_TTL, 0.0, clock()
        self._lock = self._timer = self._keeper = None

    @property
    def free(self):
        return self.held - self.reserved

    def counted(self, raw):
        """Counted tokens of raw tokens (the provider's largest weight: errs high)."""
        return int(math.ceil(raw * self.weight))

    async def take(self, raw, extra, ask=False):
        """Reserves counted(raw) + extra tokens for a request, asking the
        daemon for what the pool lacks (and, with ask, in any case: its
        verdict then says the bottle's state); returns what it reserved, or
        0 when the daemon granted too little (self.verdict says why).
        Raises DaemonError when the daemon cannot be asked."""
        return await self._take(lambda: self.counted(raw) + extra, False, ask)

    async def take_upto(self, tokens):
        """Reserves up to tokens for a stream that runs low: what the daemon
        grants, which may be less, or 0."""
        return await self._take(lambda: tokens, True, False)

    async def _take(self, need, partial, ask):
        if not ask and need() <= self.free:  # no await: nothing else runs in between
            return self._reserve(need())
        async with self._mutex():
            for _ in range(2):  # again if the reply's weight changed what is needed
                if not ask and need() <= self.free:
                    break
                ask, weight = False, self.weight
                await self._fill(lambda: max(need(), self.free) if self.id else need())
                if self.weight == weight:
                    break
            if need() <= self.free:
                return self._reserve(need())
            return self._reserve(max(self.free, 0)) if partial else 0

    def _reserve(self, tokens):
        self.reserved += tokens
        return tokens

    def settle(self, reserved, spent):
        """A request is over: its reservation goes back to the pool and what
        it spent (counted; its report settles the same at the daemon)
        leaves the allowance."""
        self.reserved = max(self.reserved - reserved, 0)
        self.held = max(self.held - spent, 0)
        if self.reserved == 0:
            self.idle_since = self._clock()
            self._keep()

    async def _fill(self, need):
        """Asks the daemon for what the pool lacks to reserve need(). An
        allowance the daemon no longer knows (expired: 404) is replaced by
        a new one, which must also cover what is in flight."""
        for _ in range(2):
            req = {"bottle": self.bottle, "agent": self.agent, "provider": self.provider, "tokens": need() - self.free}
            if self.id:
                req["id"] = self.id
            status, reply = await self._daemon("POST", "/v1/allowances", req)
            if status == 404 and self.id:
                self._forget()
                continue
            if status != 200 or not isinstance(reply, dict):
                raise DaemonError(_reply_error("allowance", status, reply))
            self._apply(reply)
            return

    def _apply(self, reply):
        """Takes in the daemon's answer: what it granted, what the allowance
        holds now (never more than this pool counts: reports it has not
        received yet were spent), its weight and when it expires."""
        self.id = _str(reply.get("id")) or self.id
        if isinstance(reply.get("weight"), (int, float)) and reply["weight"] > 0:
            self.weight = float(reply["weight"])
        self.held += max(reply.get("granted") if _has(reply, "granted") else 0, 0)
        if _has(reply, "held"):
            self.held = min(self.held, max(reply["held"], 0))
        self.verdict = _dict(reply.get("verdict")) or {}
        self.ttl = seconds_until(reply.get("expires_at"), DEFAULT_TTL) or DEFAULT_TTL
        self.renew_at = self._clock() + self.ttl / 3
        self._keep()

    def _forget(self):
        self.id, self.held = None, 0

    def _mutex(self):
        if self._lock is None:  # made on the event loop that uses it
            self._lock = asyncio.Lock()
        return self._lock

    def _keep(self):
        """Arms the keeper's timer for the next renewal or idle release
        (a timer, not a sleeping task: nothing to wake, nothing to cancel
        at shutdown but the timer)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.id is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: unit tests call tick themselves
            return
        self._timer = loop.call_later(max(self._due() - self._clock(), 0.0), self._fire, loop)

    def _fire(self, loop):
        self._timer = None
        self._keeper = loop.create_task(self._tick_and_rearm())

    async def _tick_and_rearm(self):
        await self.tick()
        self._keep()

    def stop(self):
        """Stops the keeper (the addon is shutting down)."""
        for pending in (self._timer, self._keeper):
            if pending is not None:
                pending.cancel()

    def _due(self):
        if self.reserved:
            return self.renew_at
        return min(self.renew_at, self.idle_since + IDLE_RELEASE)

    async def tick(self):
        """Renews the allowance every TTL/3 while it is held, and gives it
        back once nothing has been in flight for IDLE_RELEASE seconds."""
        async with self._mutex():
            now = self._clock()
            if self.id is None:
                return
            if self.reserved == 0 and now - self.idle_since >= IDLE_RELEASE:
                await self._release()
            elif now >= self.renew_at:
                await self._renew()

    async def _release(self):
        aid = self.id
        self._forget()
        try:
            status, reply = await self._daemon("DELETE", "/v1/allowances/" + urllib.parse.quote(aid, safe=""), None)
        except DaemonError as err:
            log.info("bottlecap: could not release allowance %s (%s); it expires on its own", aid, err)
            return
        if status not in (200, 204, 404):
            log.info("bottlecap: %s; allowance %s expires on its own", _reply_error("release", status, reply), aid)

    async def _renew(self):
        """Renews the allowance (tokens 0). One the daemon no longer knows is
        replaced while requests are in flight: their reservations must
        stay covered."""
        req = {"id": self.id, "bottle": self.bottle, "agent": self.agent, "provider": self.provider, "tokens": 0}
        try:
            status, reply = await self._daemon("POST", "/v1/allowances", req)
            if status == 404:
                self._forget()
                if self.reserved:
                    await self._fill(lambda: 0)
            elif status != 200 or not isinstance(reply, dict):
                raise DaemonError(_reply_error("renew", status, reply))
            else:
                self._apply(reply)
        except DaemonError as err:
            log.warning("bottlecap: could not renew allowance %s (%s); trying again in a second", req["id"], err)
            self.renew_at = self._clock() + 1.0


# --- cutting a stream -------------------------------------------------------------
# A stream the budget no longer pays for ends with one error event in the
# provider's stream format (the Go meter's shapes), after the last whole
# event that passed.

def stream_error_event(fmt, status, message, res=None, family=None):
    """The last event of a cut stream, framed so that the provider's SDK
    ends the stream with it as an error: Anthropic an `error` event; OpenAI
    Chat and Gemini a data line with an "error" object; OpenAI Responses
    `response.failed`, with the error in response.error (where Codex reads
    it) and as a top-level "error" object (which openai-go and the Python
    SDK raise). res is what the stream said so far (id, model); family is
    the request's error shape (_family), by default the format's."""
    if family != CHATGPT:
        family = ANTHROPIC if fmt == ANTHROPIC else GEMINI if fmt == GEMINI else CHAT
    body, name = error_body(family, status, message), ""
    if fmt == ANTHROPIC:
        name = "error"
    elif fmt == RESPONSES:
        name, err = "response.failed", body["error"]
        resp = {"object": "response", "status": "failed", "error": {"code": err["code"], "message": err["message"]}}
        for k in ("id", "model"):
            if (res or {}).get(k):
                resp[k] = res[k]
        body = {"type": "response.failed", "response": resp, "error": err}
    head = ("event: %s\n" % name) if name else ""
    return (head + "data: " + json.dumps(body) + "\n\n").encode()


EVENT_ENDS = (b"\n\n", b"\n\r\n", b"\r\r")


def events_end(b):
    """The length of b's whole server-sent events: just past its last blank
    line (LF, CRLF or CR endings), or 0."""
    end = 0
    for sep in EVENT_ENDS:
        i = b.rfind(sep)
        if i >= 0:
            end = max(end, i + len(sep))
    return end


# HOLD_LIMIT bounds the part of an event held back until the event is
# whole; a longer one passes as it comes (and a cut then ends the stream
# without an error event rather than inside it).
HOLD_LIMIT = 1 << 20
# CUT_GRACE: seconds a cut waits for the upstream's next chunk to carry the
# error event, where the response cannot be ended at once; then the
# upstream is closed without it.
CUT_GRACE = 1.0


# mitmproxy has no public way to end a flow in transit: flow.kill() only
# marks the flow, and mitmproxy's HTTP layer reads the mark after its next
# hook, which for a streamed response is the `response` hook once the
# upstream has finished (proxy/layers/http/__init__.py, check_killed; the
# TODO in flow.py's kill and mitmproxy issue 4711); an exception in a
# stream function is logged as a crash and loses that chunk. So a cut uses
# mitmproxy 8's connection handler, as a layer's CloseConnection command
# does, and degrades to dropping what follows when it is laid out
# otherwise (README).

def _connection_handler(flow):
    from mitmproxy import ctx
    handlers = ctx.master.addons.get("proxyserver")._connections
    return handlers[("tcp", flow.client_conn.peername, flow.client_conn.sockname)]


def close_upstream(flow):
    """Closes the flow's connection to its upstream (the provider stops
    generating); False when it is closed already or cannot be reached."""
    try:
        handler = _connection_handler(flow)
        if flow.server_conn not in handler.transports:
            return False
        handler.close_connection(flow.server_conn)
        return True
    except (ImportError, AttributeError, KeyError, TypeError) as err:
        log.warning("bottlecap: cannot close the upstream connection of a cut stream (%s)", err)
        return False


def _http_layer(handler, flow):
    """The HTTP layer that holds flow's stream and its upstream connection.
    In regular mode the CONNECT's tunnel nests a second one (behind the
    stream of the CONNECT, through TLS), which is the one wanted."""
    from mitmproxy.proxy.layers.http import HttpLayer, HttpStream
    todo, seen = [handler.layer], set()
    while todo and len(seen) < 256:
        layer = todo.pop()
        if layer is None or id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, HttpLayer):
            if (any(getattr(s, "flow", None) is flow for s in layer.streams.values())
                    and not isinstance(layer.connections.get(flow.server_conn), HttpStream)):
                return layer
            todo.extend(layer.streams.values())
        # NextLayer.layer, a tunnel's or a CONNECT stream's child_layer, and
        # the layer a mode (HttpProxy) hands its events to.
        todo += [getattr(layer, "layer", None), getattr(layer, "child_layer", None),
                 getattr(getattr(layer, "_handle_event", None), "__self__", None)]
    return None


def end_response(flow):
    """Ends the flow's response where it is: its HTTP/1 upstream reader is
    told the body ends with the connection, and the connection is closed.
    mitmproxy then finishes the response as if the upstream had: the
    stream function gets its last call (which sends the error event), the
    `response` hook runs, and the client sees the response end cleanly.
    False where the upstream is not HTTP/1 or mitmproxy is laid out
    otherwise; the caller then waits for the next chunk."""
    try:
        from h11._readers import Http10Reader  # what mitmproxy's own HTTP/1 layer uses
        from mitmproxy.proxy.layers.http._http1 import Http1Client
        handler = _connection_handler(flow)
        http = _http_layer(handler, flow)
        conn = http.connections.get(flow.server_conn) if http is not None else None
        h1 = conn.context.layers[-1] if conn is not None else None
        if not isinstance(h1, Http1Client) or h1.state != h1.read_body:
            return False
        if getattr(http.streams.get(h1.stream_id), "flow", None) is not flow:
            return False
        h1.body_reader = Http10Reader()
        handler.close_connection(flow.server_conn)
        return True
    except (ImportError, AttributeError, KeyError, TypeError, IndexError) as err:
        log.info("bottlecap: cannot end a cut response at once (%s); it ends with the next chunk", err)
        return False


# --- following the bottle's state -------------------------------------------------

class SSEReader:
    """Splits the daemon's server-sent events out of bytes fed in pieces."""

    def __init__(self):
        self._buf, self._name, self._data = b"", "", []

    def feed(self, chunk):
        """Returns the (event name, data) of each event the chunk completes."""
        lines = (self._buf + chunk).split(b"\n")
        self._buf = lines.pop()
        if len(self._buf) > MAX_REPLY:
            self._buf = b""  # an oversized event is skipped, never buffered
        out = []
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:
                if self._data:
                    out.append((self._name, b"\n".join(self._data)))
                self._name, self._data = "", []
                continue
            field, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if field == b"event":
                self._name = value.decode("utf-8", "replace")
            elif field == b"data":
                self._data.append(value)
        return out


# EVENTS_IDLE: seconds without a byte on the events stream (the daemon
# sends a comment every 15 s) after which the addon reconnects.
EVENTS_IDLE = 60.0


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
        self.allowances = env.get("BOTTLECAP_ALLOWANCES", "1") not in ("0", "false", "no")
        self.fail_open = env.get("BOTTLECAP_FAIL_OPEN", "0") in ("1", "true", "yes")
        self.retry_seconds = _number(env, "BOTTLECAP_RETRY_SECONDS", 3600.0)
        self.gate_timeout = _number(env, "BOTTLECAP_GATE_TIMEOUT", 2.0)
        self.queue_limit = int(_number(env, "BOTTLECAP_QUEUE_LIMIT", 10000))
        self.pass_unmetered = _pass_list(env.get("BOTTLECAP_PASS_UNMETERED"))


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
# behind any host and base path (chatgpt.com/backend-api/codex/responses):
# /responses/compact is remote compaction, /completions the legacy
# Completions API (Chat's usage shape); Gemini's methods end any model
# path (models/, tunedModels/, dynamic/, Code Assist's /v1internal), and
# its OpenAI compatibility layer answers in Chat's shape.
METERED_SUFFIXES = ("/messages", "/chat/completions", "/responses", "/responses/compact", "/completions",
                    ":generateContent", ":streamGenerateContent", "/openai/chat/completions", ":chatCompletions")

# UNMETERED are, for each provider API, the calls that spend tokens the
# addon cannot count: (pattern, what it is). A "*" in a pattern stands for
# one path segment or part of one (an id, a model before a Gemini method).
# A POST to one is refused (403) unless BOTTLECAP_PASS_UNMETERED names its
# pattern. Every other path passes: the list holds the known spending
# calls, not the harmless ones, so model lists, token counts, files and the
# agents' telemetry and sign-in keep working. Anthropic's Managed Agents
# sessions (/v1/sessions) are not in it: Claude Code's Remote Control,
# which runs the agent here and is metered, uses the same path.
UNMETERED = {
    "anthropic": (
        ("/v1/messages/batches", "Message Batches"),
        ("/v1/complete", "legacy Text Completions (its responses carry no usage)"),
        ("/v1/deployments/*/run", "Managed Agents deployment run"),
        ("/v1/dreams", "Managed Agents dreams"),
    ),
    "openai": (
        ("/v1/batches", "Batch API"),
        ("/v1/embeddings", "Embeddings"),
        ("/v1/audio/speech", "Audio speech"),
        ("/v1/audio/transcriptions", "Audio transcriptions"),
        ("/v1/audio/translations", "Audio translations"),
        ("/v1/images/generations", "Image generation"),
        ("/v1/images/edits", "Image edits"),
        ("/v1/images/variations", "Image variations"),
        ("/v1/videos", "Video generation"),
        ("/v1/videos/edits", "Video edits"),
        ("/v1/videos/extensions", "Video extensions"),
        ("/v1/videos/*/remix", "Video remix"),
        ("/v1/realtime/sessions", "Realtime sessions"),
        ("/v1/realtime/transcription_sessions", "Realtime transcription sessions"),
        ("/v1/realtime/client_secrets", "Realtime client secrets"),
        ("/v1/realtime/translations/client_secrets", "Realtime translation client secrets"),
        ("/v1/realtime/calls", "Realtime calls (WebRTC)"),
        ("/v1/live/sessions", "Live sessions (WebRTC)"),
        ("/v1/threads/runs", "Assistants runs"),
        ("/v1/threads/*/runs", "Assistants runs"),
        ("/v1/threads/*/runs/*/submit_tool_outputs", "Assistants runs"),
        ("/v1/fine_tuning/jobs", "Fine-tuning jobs"),
        ("/v1/fine_tuning/jobs/*/resume", "Fine-tuning jobs"),
        ("/v1/fine_tuning/alpha/graders/run", "Fine-tuning graders"),
        ("/v1/agents/sessions", "Agents sessions"),
        ("/v1/agents/sessions/*/events", "Agents session events"),
        ("/v1/agents/automations", "Agents automations"),
        ("/v1/agents/automations/*/invocations", "Agents automation invocations"),
        ("/v1/agents/automations/*/resume", "Agents automations"),
        ("/v1/chatkit/sessions", "ChatKit sessions"),
        ("/v1/decisions", "Decisions"),
        ("/v1/alpha/search", "Codex web search"),
        ("/v1/memories/trace_summarize", "Codex memory summaries"),
    ),
    "chatgpt": (
        ("/backend-api/codex/alpha/search", "Codex web search"),
        ("/backend-api/codex/memories/trace_summarize", "Codex memory summaries"),
        ("/backend-api/codex/images/generations", "Codex image generation"),
        ("/backend-api/codex/images/edits", "Codex image edits"),
        ("/backend-api/codex/realtime/calls", "Codex realtime calls"),
        ("/backend-api/wham/tasks", "Codex cloud tasks"),
        ("/backend-api/conversation", "ChatGPT conversations"),
        ("/backend-api/f/conversation", "ChatGPT conversations"),
    ),
    "gemini": (
        ("/*/models/*:batchGenerateContent", "Batch Mode"),
        ("/*/models/*:embedContent", "Embeddings"),
        ("/*/models/*:batchEmbedContents", "Embeddings"),
        ("/*/models/*:asyncBatchEmbedContent", "Embeddings batches"),
        ("/*/models/*:predict", "Imagen and other predictions"),
        ("/*/models/*:predictLongRunning", "Veo and other long-running predictions"),
        ("/*/models/*:generateAnswer", "Attributed question answering"),
        ("/*/interactions", "Interactions API"),
        ("/*/cachedContents", "context caching (bills the cached tokens)"),
        ("/*/openai/embeddings", "OpenAI-compatible embeddings"),
        ("/*/openai/images/generations", "OpenAI-compatible image generation"),
        ("/*/openai/batches", "OpenAI-compatible batches"),
        ("/google.ai.generativelanguage.*/*", "gRPC methods"),
    ),
    "codeassist": (
        ("/v1internal:completeCode", "Code Assist code completion"),
        ("/v1internal:generateCode", "Code Assist code generation"),
        ("/v1internal:transformCode", "Code Assist code transformation"),
        ("/v1internal:generateChat", "Code Assist chat"),
        ("/v1internal:streamGenerateChat", "Code Assist chat"),
        ("/v1internal:internalAtomicAgenticChat", "Code Assist agent chat"),
        ("/v1internal:tabChat", "Code Assist chat"),
        ("/google.internal.cloud.code.*/*", "Code Assist gRPC methods"),
    ),
}
# API_OF are the provider table's APIs (UNMETERED's keys) of an error shape
# (_family), whose lists a request is matched against first: OpenAI's
# Chat shape is the openai API's, Google's is Gemini's and Code Assist's.
API_OF = {ANTHROPIC: ("anthropic",), CHAT: ("openai",), CHATGPT: ("chatgpt",), GEMINI: ("gemini", "codeassist")}


# SHAPE are, for each provider API that has them, the query parameters and
# request headers with which a client may have it answer a generation call
# in a form the addon cannot read the usage of: Google's system parameters
# alt=proto, fields and X-Goog-FieldMask. A metered call that carries such
# a header, or such a parameter with any value but json or sse, is refused.
_GOOGLE_SHAPE = (("alt", "$alt", "fields", "$fields"), ("X-Goog-FieldMask",))
SHAPE = {"gemini": _GOOGLE_SHAPE, "codeassist": _GOOGLE_SHAPE}


def unreadable_ask(family, path, headers):
    """What in a generation call to family's API (an error shape) asks for
    an answer the addon could not read the usage of, or ""."""
    params, header_names = SHAPE.get((API_OF.get(family) or ("",))[0], ((), ()))
    query = path.split("?", 1)[1] if "?" in path else ""
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if name in params and value.lower() not in ("json", "sse"):
            return "%s=%s" % (name, value)
    for h in header_names:
        if headers.get(h) is not None:
            return "%s: %s" % (h, headers.get(h))
    return ""


def _glob(pattern):
    """A pattern of UNMETERED as a regular expression: "*" is any run of
    characters but "/", the rest literal, in any letter case (as Go's
    path.Match reads the same pattern in the meter)."""
    return re.compile("[^/]*".join(re.escape(part) for part in pattern.lower().split("*")) + r"\Z")


_UNMETERED_RE = {api: tuple((_glob(p), p, what) for p, what in calls) for api, calls in UNMETERED.items()}


# MAX_DECODES bounds how many more times a path is unescaped, for an
# upstream behind a hop that decodes it again.
MAX_DECODES = 3


def _clean(path):
    """A request path as an upstream that folds paths routes it: "\\" read as
    "/", each segment's ";params" dropped, "//", "." and ".." folded, no
    trailing slash; always rooted (the meter's cleanPath). Letter case is
    left to the matching."""
    path = path.replace("\\", "/")
    if ";" in path:
        path = "/".join(seg.split(";", 1)[0] for seg in path.split("/"))
    return posixpath.normpath(re.sub("/+", "/", "/" + path))


def _forms(path, tagged=False):
    """The cleaned spellings of a request path (its query dropped) an
    upstream may route on: decoded, as sent, and decoded again until
    nothing more unescapes; the first is the one most upstreams route on.
    tagged: (spelling, whether its escapes are still in it) pairs."""
    raw = path.split("?", 1)[0]
    p = urllib.parse.unquote(raw)
    forms = [(_clean(p), False), (_clean(raw), True)]
    for _ in range(MAX_DECODES):
        d = urllib.parse.unquote(p)
        if d == p:
            break
        p = d
        forms.append((_clean(p), False))
    seen, unique = set(), []
    for f, escaped in forms:
        if f not in seen:  # the first spelling of a path is the one kept, with its tag
            seen.add(f)
            unique.append((f, escaped))
    return unique if tagged else [f for f, _ in unique]


# PATH_SAFE are the characters a path segment may hold unescaped (RFC
# 3986 pchar), besides letters, digits and "_.-~".
PATH_SAFE = "/:@!$&'()*+,;="

# _SUFFIXES are METERED_SUFFIXES, longest first, so a path ending in
# /responses/compact is compaction and not a Responses call.
_SUFFIXES = sorted(METERED_SUFFIXES, key=len, reverse=True)


def metered_path(path):
    """The path (with its query) a generation call is sent on as the table
    spells its call, when any spelling of path names one; else None. What
    precedes the call is kept as decoded (a base path, a model)."""
    query = path[len(path.split("?", 1)[0]):]
    for form, escaped in _forms(path, tagged=True):
        low = form.lower()
        for suffix in _SUFFIXES:
            if low.endswith(suffix.lower()):
                call = form[:len(form) - len(suffix)] + suffix
                return (call if escaped else urllib.parse.quote(call, safe=PATH_SAFE)) + query
    return None


def may_generate(method, headers):
    """Whether a request could make an upstream generate: one with a body,
    or of a method that carries one. A bodiless GET, HEAD, OPTIONS or
    DELETE has no prompt to answer (OpenAI lists stored chat completions
    with a GET of /v1/chat/completions)."""
    if method not in ("GET", "HEAD", "OPTIONS", "DELETE"):
        return True
    return bool(headers.get("transfer-encoding")) or (headers.get("content-length") or "0").strip() not in ("", "0")


def unmetered_call(family, path, passed=()):
    """The (pattern, what) of the unmetered call a request to path makes,
    unless passed names it; None when the request may go on. Every
    cleaned spelling of the path is matched (an escaped "/" inside an id is
    one segment to an upstream that routes on the raw path), against the
    lists of family's API (an error shape, as _family returns it) first,
    then those of the others: a path that names another API's call is
    that API's, whatever host it was sent to."""
    mine = API_OF.get(family, ())
    apis = list(mine) + [api for api in UNMETERED if api not in mine]
    forms = [f.lower() for f in _forms(path)]
    for api in apis:
        for rx, pattern, what in _UNMETERED_RE[api]:
            if pattern not in passed and any(rx.match(p) for p in forms):
                return pattern, what
    return None


def unmetered_message(path, provider, pattern, what, method="POST"):
    """Why a call was refused, and the operator's way through."""
    return ("bottlecap: %s %s (%s) spends tokens that bottlecap does not meter, so the %s budget cannot see them; "
            "the request was refused (fail-closed). An operator who accepts that can let it through, unmetered, "
            "with BOTTLECAP_PASS_UNMETERED=%s (bottlecap meter: --pass-unmetered %s)"
            % (method, path.split("?", 1)[0], what, provider, pattern, pattern))


def _pass_list(raw):
    """BOTTLECAP_PASS_UNMETERED: comma-separated patterns of UNMETERED; a
    name that is none of them fails the addon's load instead of leaving the
    call refused."""
    known = {p for calls in UNMETERED.values() for p, _ in calls}
    names = tuple(n.strip() for n in (raw or "").split(",") if n.strip())
    for n in names:
        if n not in known:
            raise ValueError("BOTTLECAP_PASS_UNMETERED: %r is not an unmetered call of the provider table (want its "
                             "pattern as listed, e.g. /v1/embeddings or /v1beta/models/*:embedContent)" % n)
    return names


def metered(method, path):
    """Whether a request is a generation call that costs tokens."""
    return method == "POST" and metered_path(path) is not None


def fallback_id(provider, headers):
    """A report id for a response whose body names none: the provider's
    request id header (unique per response), else a random one."""
    for key in ("request-id", "x-request-id", "x-goog-request-id"):
        v = headers.get(key)
        if v and len(v) <= 200:
            return "%s-req-%s" % (provider, v)
    return "meter-" + uuid.uuid4().hex


ERROR_KINDS = {
    # status: (anthropic type, gemini status, openai type, openai code, chatgpt type)
    # 403: a call that spends tokens bottlecap does not meter (UNMETERED).
    403: ("permission_error", "PERMISSION_DENIED", "invalid_request_error", "endpoint_not_metered",
          "invalid_request_error"),
    # ChatGPT's backend says usage_limit_reached when a plan is spent: Codex
    # shows that 429 as a usage limit and does not retry it (any other 429
    # only as "exceeded retry limit").
    426: ("invalid_request_error", "FAILED_PRECONDITION", "invalid_request_error", "websocket_not_metered",
          "invalid_request_error"),
    429: ("rate_limit_error", "RESOURCE_EXHAUSTED", "insufficient_quota", "insufficient_quota", "usage_limit_reached"),
    502: ("api_error", "UNAVAILABLE", "server_error", "upstream_not_metered", "server_error"),
    503: ("overloaded_error", "UNAVAILABLE", "server_error", "budget_daemon_unavailable", "server_error"),
}


def error_body(family, status, message):
    """The provider's own error shape, so the agent's SDK shows the message."""
    anthropic, gemini, openai, code, chatgpt = ERROR_KINDS.get(status, ERROR_KINDS[503])
    if family == ANTHROPIC:
        return {"type": "error", "error": {"type": anthropic, "message": message}}
    if family == GEMINI:
        return {"error": {"code": status, "message": message, "status": gemini}}
    return {"error": {"message": message, "type": chatgpt if family == CHATGPT else openai, "code": code, "param": None}}


# REFUSAL_HEADERS go on every answer the addon makes itself: the official
# SDKs retry 429 and 5xx unless told not to, which would repeat a denied
# call two more times.
REFUSAL_HEADERS = {"Content-Type": "application/json", "x-should-retry": "false", "x-bottlecap": "refused"}


def _make_response(status, body, headers):
    from mitmproxy import http as mhttp  # only when running inside mitmproxy
    return mhttp.Response.make(status, json.dumps(body).encode(), headers)


def denied_message(provider, v, need=None, default="budget exhausted"):
    """Names the budget that tripped: scope, id, provider, limit, used, and
    held and remaining when the daemon gives them; need is (tokens, input
    estimate, output slice) for a request an allowance could not cover."""
    budget = "scope %s %s, provider %s, limit %s, used %s" % (
        v.get("scope", "?"), v.get("scope_id") or "-", v.get("provider") or provider, v.get("limit", "?"), v.get("used", "?"))
    for k in ("held", "remaining"):
        if k in v:
            budget += ", %s %s" % (k, v[k])
    if need:
        budget += "; this request needs %d tokens: its input, estimated at %d, and %d for its output" % need
    return "bottlecap: %s budget denied: %s (budget: %s)" % (provider, v.get("reason") or default, budget)


def over_cap_message(cap, passed):
    """Why a stream was ended that passed more than its request's cap allows."""
    return ("bottlecap: the upstream went on past the output cap the request states (%d tokens): %d bytes of output "
            "passed, more than %d tokens can hold; the addon admitted the request on that cap and cut the stream"
            % (cap, passed, cap))


def cut_message(provider, v):
    """Why a stream was ended where its allowance ran out."""
    return denied_message(provider, v, default="the budget has nothing left for this stream") + (
        "; the stream was ended where its allowance ran out, so retrying will not help")


def _family(provider, path):
    """The error shape of a request: ChatGPT's backend by its path (the
    request may come through any host name), else the provider's API."""
    if _forms(path)[0].lower().startswith(CHATGPT_PREFIXES):
        return CHATGPT
    f = FAMILY.get(provider) or format_for_path(path)
    return ANTHROPIC if f == ANTHROPIC else GEMINI if f == GEMINI else CHAT


def _is_upgrade(headers):
    return bool(headers.get("upgrade")) or "upgrade" in (headers.get("connection") or "").lower()


def floored(res, estimate, fmt, model):
    """The usage of a stream that ended early, charged no less than what
    passed (SPEC section 4): the input estimate when the provider's input
    counts had not arrived, and the output counted from its deltas when the
    provider's count is lower."""
    res = dict(res)
    if res["input_tokens"] + res["cache_read_tokens"] + res["cache_write_tokens"] == 0:
        res["input_tokens"] = estimate
    res["output_tokens"] = max(res["output_tokens"], output_tokens(fmt, model, res.get("delta_bytes", 0)))
    res["total_tokens"] = res["input_tokens"] + res["cache_read_tokens"] + res["cache_write_tokens"] + res["output_tokens"]
    return res


def slice_for(est, pool):
    """The output a request reserves at admission, and a stream asks for
    each time it runs low, in counted tokens: OUTPUT_SLICE, or the cap its
    body states when that is less (its provider generates no more)."""
    if not est.cap or pool is None:
        return OUTPUT_SLICE
    return min(OUTPUT_SLICE, pool.counted(est.cap))


class Flight:
    """A metered request the addon let through: its input estimate, what it
    reserved from its pool (no pool in naive mode) and, once its response
    streams, what has passed and whether it is being cut."""

    def __init__(self, flow, provider, pool, est, tokens):
        self.flow, self.provider, self.pool, self.est, self.tokens = flow, provider, pool, est, tokens
        self.slice = slice_for(est, pool)  # what it takes at a time
        self.cap_bytes = est.cap * CAP_BYTES_PER_TOKEN + CAP_SLACK_BYTES if est.cap else 0
        fmt = format_for_path(flow.request.path)
        self.format = fmt if fmt != AUTO else FAMILY.get(provider, CHAT)
        self.tap = None
        self.live = False  # its events are counted as they pass, and it may be cut
        self.inject = False  # an error event can end it (identity-encoded events, no Content-Length)
        self.held_back, self.aligned = b"", True  # the part of an event not yet whole; what passed ends between events
        self.extending = self.open = self.done = self.ended = self.sent_error = False
        self.refused, self.refused_status = "", 429  # why the last extension failed: it ends at its reservation
        self.cut, self.cut_status = "", 429  # why it is being cut

    def spent(self, res=None):
        """Counted tokens its response has cost so far (res: its tap's
        progress, if at hand)."""
        return self.pool.counted(self.floored(res or self.tap.progress())["total_tokens"])

    def floored(self, res):
        return floored(res, self.est.tokens, self.format, self.est.model)


class Addon:
    """The mitmproxy addon: admit requests against allowances, tail and cut
    responses, report usage."""

    def __init__(self, settings=None, reporter=None, make_response=_make_response, verdict=None, daemon=None):
        self.settings = settings or Settings()
        self.reporter = reporter or Reporter(self.settings.socket, self.settings.retry_seconds,
                                             limit=self.settings.queue_limit)
        self.make_response = make_response
        self.verdict = verdict or self._verdict
        self.daemon = daemon or self._call_daemon
        self.estimator = Estimator()
        self.stream_large_bodies = False  # mitmproxy's option of that name is set
        self.blocked = ""  # why the bottle may spend nothing now (its state), once the daemon said so
        self.watching = False  # the bottle's events are being followed
        self._taps, self._flights, self._pools, self._tasks = {}, {}, {}, set()
        self._watcher, self._closed = None, False

    @property
    def allowances(self):
        return self.settings.allowances and self.settings.gate and bool(self.settings.bottle)

    def configure(self, updated):
        """Notes whether mitmproxy may stream bodies itself (then every
        metered response is tailed as it passes)."""
        try:
            from mitmproxy import ctx
            self.stream_large_bodies = bool(ctx.options.stream_large_bodies)
        except (ImportError, AttributeError):
            pass

    def running(self):
        self._ensure_watch()

    def _provider(self, flow):
        host = (flow.request.pretty_host or flow.request.host or "").lower()
        return self.settings.hosts.get(host)

    async def _call_daemon(self, method, path, body):
        try:
            return await acall(self.settings.socket, method, path, self.settings.gate_timeout, body)
        except (OSError, ValueError, asyncio.TimeoutError) as err:
            raise DaemonError(_why(err)) from err

    async def _verdict(self, provider):
        q = urllib.parse.urlencode({"bottle": self.settings.bottle, "agent": self.settings.agent, "provider": provider})
        status, reply = await acall(self.settings.socket, "GET", "/v1/verdict?" + q, self.settings.gate_timeout)
        if status != 200 or not isinstance(reply, dict):
            raise RuntimeError(_reply_error("verdict", status, reply))
        return reply

    def _refuse(self, flow, family, status, message):
        flow.response = self.make_response(status, error_body(family, status, message), dict(REFUSAL_HEADERS))

    # --- requests ---

    async def requestheaders(self, flow):
        """Refuses upgrades on provider hosts and, before any byte of the
        request goes upstream, asks the gate (naive mode) or admits a body
        mitmproxy streams (allowances; other bodies are admitted in
        `request`, once they are whole)."""
        provider = self._provider(flow)
        if provider is None or flow.response is not None:
            return
        family = _family(provider, flow.request.path)
        if _is_upgrade(flow.request.headers):
            self._refuse(flow, family, 426, "bottlecap: WebSocket and other upgrades to %s are refused because "
                         "bottlecap cannot meter them; use HTTP (server-sent events) instead" % provider)
            return
        if not self._route_metered(flow, provider, family):
            self._refuse_unmetered(flow, provider, family)
            return
        flow.request.headers["accept-encoding"] = "identity"  # the parser reads the bytes as they pass
        if not (self.settings.gate and self.settings.bottle):
            return
        if not self.settings.allowances:
            await self._gate(flow, provider, family)
        elif getattr(flow.request, "stream", None):
            # mitmproxy sends this body upstream as it comes, right after this hook.
            await self._admit(flow, provider, family, None)
        elif self.stream_large_bodies and "content-length" not in flow.request.headers:
            self._refuse(flow, family, 429, "bottlecap: a %s request without Content-Length cannot be estimated before "
                         "mitmproxy may stream it upstream (stream_large_bodies); send Content-Length" % provider)
        if flow.response is not None and getattr(flow.request, "stream", None):
            # mitmproxy already chose to stream this body upstream; a
            # response cannot be set on it, so it is killed instead.
            log.warning("bottlecap: refused a request whose body mitmproxy streams; closing it without an answer")
            flow.response = None
            flow.kill()

    def _route_metered(self, flow, provider, family):
        """Whether a request is a generation call to meter: a POST that any
        spelling of its path names one by, which is then sent on as the
        table spells the call. Any other request that could make one
        generate (a PUT, a GET with a body) is refused (403); a bodiless
        read goes on, unmetered."""
        req = flow.request
        call = metered_path(req.path)
        if call is None:
            return False
        if req.method != "POST":
            if may_generate(req.method, req.headers):
                log.warning("bottlecap: refused %s %s to %s: a generation call that is not a POST",
                            req.method, req.path.split("?", 1)[0], provider)
                self._refuse(flow, family, 403, "bottlecap: %s %s calls %s, which bottlecap meters only as a POST; "
                             "sent with another method (or with a body) it could spend tokens the budget cannot see, "
                             "so it was refused (fail-closed). Send it as a POST"
                             % (req.method, req.path.split("?", 1)[0], call.split("?", 1)[0]))
                self._kill_streamed(flow)
            return False
        ask = unreadable_ask(family, req.path, req.headers)
        if ask:
            log.warning("bottlecap: refused POST %s to %s: it asks (%s) for an answer bottlecap cannot read",
                        req.path.split("?", 1)[0], provider, ask)
            self._refuse(flow, family, 403, "bottlecap: POST %s asks (%s) for an answer bottlecap cannot read the usage "
                         "of, so the %s budget could not see what it spends; the request was refused (fail-closed). "
                         "Ask for JSON or server-sent events (alt=sse), with every field"
                         % (req.path.split("?", 1)[0], ask, provider))
            self._kill_streamed(flow)
            return False
        if call != req.path:
            log.info("bottlecap: metered POST %s to %s, sent on as %s", req.path, provider, call)
            req.path = call
        return True

    def _kill_streamed(self, flow):
        if flow.response is not None and getattr(flow.request, "stream", None):
            flow.response = None  # mitmproxy streams this body upstream: kill it instead
            flow.kill()

    def _refuse_unmetered(self, flow, provider, family):
        """Refuses (403) a request that may carry a prompt (a POST, a PUT,
        a GET with a body) to a call that spends tokens the addon cannot
        count, unless BOTTLECAP_PASS_UNMETERED names it; the daemon is not
        asked, and BOTTLECAP_GATE=0 does not let it through."""
        req = flow.request
        if flow.response is not None or not may_generate(req.method, req.headers):
            return
        call = unmetered_call(family, req.path, self.settings.pass_unmetered)
        if call is None:
            return
        log.warning("bottlecap: refused %s %s to %s: it spends tokens bottlecap does not meter (%s)",
                    req.method, req.path.split("?", 1)[0], provider, call[0])
        self._refuse(flow, family, 403, unmetered_message(req.path, provider, *call, method=req.method))
        self._kill_streamed(flow)

    async def _gate(self, flow, provider, family):
        if self._reporter_full() and not self.settings.fail_open:
            self._refuse(flow, family, 503, BACKED_UP)
            return
        try:
            v = self.verdict(provider)
            if inspect.isawaitable(v):
                v = await v
        except (OSError, RuntimeError, ValueError, asyncio.TimeoutError, http.client.HTTPException) as err:
            self._unreachable(flow, family, _why(err))
            return
        if not v.get("allowed", False):
            self._refuse(flow, family, 429, denied_message(provider, v))

    def _unreachable(self, flow, family, why):
        """Fails closed (503), or open with BOTTLECAP_FAIL_OPEN=1."""
        if self.settings.fail_open:
            log.warning("bottlecap: daemon unreachable (%s); forwarding (fail-open)", why)
            return
        log.warning("bottlecap: daemon unreachable (%s); refusing (fail-closed)", why)
        self._refuse(flow, family, 503, "bottlecap: the budget daemon cannot be reached (%s); the request was "
                     "refused (fail-closed)" % why)

    def _reporter_full(self):
        full = getattr(self.reporter, "full", None)
        return bool(full and full())

    async def request(self, flow):
        """Asks upstreams for usage in Chat streams, estimates the body and
        (allowances) admits the request before anything is sent."""
        provider = self._provider(flow)
        if provider is None or flow.response is not None or not metered(flow.request.method, flow.request.path):
            return
        if format_for_path(flow.request.path) == CHAT:
            self._include_usage(flow)
        if flow.id in self._flights:
            return  # admitted in requestheaders: mitmproxy streamed its body
        if self.allowances:
            await self._admit(flow, provider, _family(provider, flow.request.path), _content(flow.request))
            return
        # Naive mode: the estimate only floors a stream that ends early.
        est = self.estimator.estimate(provider, format_for_path(flow.request.path), flow.request.path,
                                      _content(flow.request))
        self._flights[flow.id] = Flight(flow, provider, None, est, 0)

    def _include_usage(self, flow):
        try:
            body = json.loads(_content(flow.request))
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

    async def _admit(self, flow, provider, family, body):
        """Lets a request through only when its pool can reserve its input
        estimate and an output slice, or the output cap its body states
        when smaller (SPEC section 11); otherwise refuses
        it before anything is sent. body is None when mitmproxy streams it:
        it is then estimated from its length."""
        self._ensure_watch()
        if self._reporter_full() and not self.settings.fail_open:
            self._refuse(flow, family, 503, BACKED_UP)
            return
        if self.blocked and self.watching:
            self._refuse(flow, family, 429, self.blocked)
            return
        path = flow.request.path
        if body is None:
            est = self.estimator.length(provider, int(flow.request.headers.get("content-length") or 0))
        else:
            est = self.estimator.estimate(provider, format_for_path(path), path, body)
        pool = self._pool(provider)
        out = slice_for(est, pool)
        asked = not self.watching  # without the events, each admission asks the daemon, which says the state
        try:
            tokens = await pool.take(est.tokens, out, ask=asked)
        except DaemonError as err:
            self._unreachable(flow, family, str(err))
            if flow.response is None:  # fail-open: metered, not bounded
                self._flights[flow.id] = Flight(flow, provider, None, est, 0)
            return
        if asked:
            self._note_state(_str(pool.verdict.get("state")), _str(pool.verdict.get("reason")))
            if self.blocked:
                pool.settle(tokens, 0)
                self._refuse(flow, family, 429, self.blocked)
                return
        if not tokens:
            self._refuse(flow, family, 429, denied_message(provider, pool.verdict, need=(
                pool.counted(est.tokens) + out, est.tokens, out),
                default="not enough budget left for this request"))
            return
        self._flights[flow.id] = Flight(flow, provider, pool, est, tokens)

    def _pool(self, provider):
        pool = self._pools.get(provider)
        if pool is None:
            pool = self._pools[provider] = Pool(self.settings.bottle, self.settings.agent, provider, self.daemon)
        return pool

    # --- responses ---

    def _metered_response(self, flow):
        return (self._provider(flow) is not None and flow.response is not None
                and metered(flow.request.method, flow.request.path)
                and flow.response.status_code // 100 == 2 and flow.response.headers.get("x-bottlecap") != "refused")

    def responseheaders(self, flow):
        """Sets up the usage tap. Server-sent events, and any body mitmproxy
        streams itself (stream_large_bodies), are tailed as they pass
        (flow.response.stream; the tail decodes, parses and counts, no
        I/O); other bodies are read whole in `response`. An admitted event
        stream is counted against its reservation as it passes."""
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
        flight = self._flights.get(flow.id)
        if flight is not None:
            flight.tap = tap
        sse = "text/event-stream" in (flow.response.headers.get("content-type") or "")
        if not (sse or flow.response.stream or self.stream_large_bodies):
            return
        prev = flow.response.stream if callable(flow.response.stream) else None
        tap.streamed = True
        if flight is None or flight.pool is None or not sse:
            def tail(chunk):
                tap.feed(chunk)
                return prev(chunk) if prev else chunk
            flow.response.stream = tail
            return
        flight.live = True
        # Another addon's stream function may change the bytes: then a cut
        # only drops what follows.
        flight.inject = (prev is None and tap.encoding.lower() in ("identity", "")
                         and "content-length" not in flow.response.headers)
        flow.response.stream = lambda chunk: self._pass(flight, chunk, prev)
        if self.blocked:
            self._cut(flight, self.blocked)

    def _pass(self, flight, chunk, prev):
        """The stream function of an admitted event stream: counts what
        passes, asks for more before the reservation runs out, and once
        cut sends the error event and nothing more."""
        flight.tap.feed(chunk)
        if not flight.cut:
            self._spend(flight)
        if flight.cut:
            return self._cut_bytes(flight)
        out = self._whole_events(flight, chunk)
        return prev(out) if prev else out

    def _whole_events(self, flight, chunk):
        """What of the stream may pass now: whole events only, so that an
        error event can follow them (b"" ends the stream: all of it)."""
        if not flight.inject:
            return chunk
        data = flight.held_back + chunk
        end = len(data) if not chunk else events_end(data)
        if len(data) - end > HOLD_LIMIT:
            end = len(data)
            flight.aligned = False
        elif end:
            flight.aligned = True
        flight.held_back = data[end:]
        return data[:end]

    def _spend(self, flight):
        if flight.open:
            return  # fail-open: the daemon could not be asked; counted, not bounded
        res = flight.tap.progress()
        passed = res.get("delta_bytes", 0)
        if flight.cap_bytes and passed > flight.cap_bytes:
            self._cut(flight, over_cap_message(flight.est.cap, passed))
            return
        # A stream whose request states a cap still takes more as its
        # count grows past it: the count errs high, and it is what the
        # report charges. The cap bounds what it takes at a time.
        spent = flight.spent(res)
        if spent > flight.tokens and flight.refused:
            self._cut(flight, flight.refused, flight.refused_status)
        elif spent + flight.slice // 2 > flight.tokens and not (flight.extending or flight.refused):
            flight.extending = True
            self._spawn(self._extend(flight, spent + flight.slice - flight.tokens))

    async def _extend(self, flight, tokens):
        """Asks the pool for more before a stream runs out: when it cannot
        have all of it, the stream ends where its reservation does."""
        try:
            got, why, status = await flight.pool.take_upto(tokens), "", 429
        except DaemonError as err:
            got, status = 0, 503
            why = ("bottlecap: the budget daemon cannot be reached (%s); the %s stream was ended where its allowance "
                   "ran out (fail-closed)" % (err, flight.provider))
        flight.extending = False
        if flight.done:
            flight.pool.settle(got, 0)  # it ended meanwhile
            return
        flight.tokens += got
        if got >= tokens:
            return
        if status == 503 and self.settings.fail_open:
            log.warning("%s; the stream goes on uncounted against its allowance (fail-open)", why)
            flight.open = True
            return
        flight.refused, flight.refused_status = why or cut_message(flight.provider, flight.pool.verdict), status
        if flight.spent() > flight.tokens:
            self._cut(flight, flight.refused, status)

    def _cut(self, flight, message, status=429):
        """Ends a stream the budget no longer pays for (SPEC section 11): the
        client gets one error event after the last whole event that passed,
        nothing more is passed on, the upstream connection is closed."""
        if flight.cut or flight.done:
            return
        flight.cut, flight.cut_status = message, status
        log.warning("bottlecap: ending a %s stream from %s: %s", flight.provider, flight.flow.request.pretty_host, message)
        self._soon(self._end, flight)

    def _cut_bytes(self, flight):
        """What a cut stream passes: its error event once, then nothing."""
        if flight.sent_error:
            return b""
        flight.sent_error = True
        flight.held_back = b""
        self._soon(self._end, flight)  # the error is out: close the upstream
        if not (flight.inject and flight.aligned):
            return b""
        return stream_error_event(flight.format, flight.cut_status, flight.cut, flight.tap.progress(),
                                  _family(flight.provider, flight.flow.request.path))

    def _end(self, flight):
        """Closes a cut stream's upstream. Over HTTP/1 the response is ended
        at once, which sends the error event; otherwise the next chunk
        carries it, and an upstream that sends nothing for CUT_GRACE is
        closed without it."""
        if flight.done or flight.ended:
            return
        if end_response(flight.flow):
            flight.ended = True
        elif flight.sent_error or not flight.inject:
            flight.ended = close_upstream(flight.flow)
        else:
            self._later(CUT_GRACE, self._close_late, flight)

    def _close_late(self, flight):
        if not (flight.done or flight.ended):
            flight.ended = close_upstream(flight.flow)

    def response(self, flow):
        self._finish(flow, self._report(flow))

    def error(self, flow):
        """A stream that broke off is still reported, with what was seen
        (incomplete unless its final usage event had arrived)."""
        spent = 0
        if isinstance(self._taps.get(flow.id), Tap) and self._taps[flow.id].streamed:
            spent = self._report(flow)
        self._taps.pop(flow.id, None)
        self._finish(flow, spent)

    def _finish(self, flow, spent):
        """Gives back what a finished request reserved, less what it spent."""
        flight = self._flights.pop(flow.id, None)
        if flight is not None:
            flight.done = True
            if flight.pool is not None:
                flight.pool.settle(flight.tokens, spent)

    def _report(self, flow):
        """Queues the report of a response; returns what it spent, counted
        at the pool's weight (0 when nothing was reported)."""
        tap = self._taps.pop(flow.id, None)
        if not self._metered_response(flow):
            return 0
        provider, flight = self._provider(flow), self._flights.get(flow.id)
        if isinstance(tap, UnsupportedEncoding):
            self._undecodable(flow, provider, tap)
            return 0
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
        if flight is not None:
            res = self._settle_result(provider, flight, tap, res)
            if not res["model"]:
                res["model"] = flight.est.model  # the response names none (a compaction): the request's
        report = self.build_report(flow, provider, res)
        if flight is not None and flight.pool is not None and flight.pool.id:
            report["allowance"] = flight.pool.id
        self.reporter.add(report)
        return flight.pool.counted(res["total_tokens"]) if flight is not None and flight.pool is not None else 0

    def _settle_result(self, provider, flight, tap, res):
        """A cut stream is incomplete; one that ended early is charged no
        less than what passed; a complete one calibrates the estimator."""
        if flight.cut:
            res["complete"] = False
        if not res["complete"] and tap.streamed:
            return flight.floored(res)
        if res["complete"] and res["found"]:
            self.estimator.learn(provider, flight.est,
                                 res["input_tokens"] + res["cache_read_tokens"] + res["cache_write_tokens"])
            if res["format"] == RESPONSES:
                self.estimator.responded(provider, res["id"], res["total_tokens"])
        return res

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

    # --- the bottle's state ---

    def _ensure_watch(self):
        if self._watcher is not None or not self.allowances:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._watcher = loop.create_task(self._watch())

    async def _watch(self):
        """Follows the bottle's events (GET /v1/events?bottle=) while the
        addon runs, reconnecting with backoff, and cuts what is in flight
        when the bottle leaves active or warned."""
        wait, told = Reporter.FIRST_BACKOFF, False
        while not (self._closed or _cancelled()):
            try:
                await self._follow()
            except (OSError, ValueError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, DaemonError) as err:
                if self._closed or _cancelled():
                    return
                if self.watching or not told:
                    log.warning("bottlecap: not following bottle %s's events (%s); reconnecting",
                                self.settings.bottle, _why(err))
                told = True
            if self.watching:
                wait = Reporter.FIRST_BACKOFF
            self.watching = False
            await asyncio.sleep(wait)
            wait = min(wait * 2, Reporter.MAX_BACKOFF)

    async def _follow(self):
        timeout = self.settings.gate_timeout
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(self.settings.socket), timeout)
        try:
            q = urllib.parse.urlencode({"bottle": self.settings.bottle})
            # HTTP/1.0: the daemon then streams the body as it is, unchunked.
            writer.write(("GET /v1/events?%s HTTP/1.0\r\nHost: bottlecap\r\nUser-Agent: bottlecap-mitmproxy\r\n\r\n"
                          % q).encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            parts = head.split(None, 2)
            if len(parts) < 2 or not parts[1].isdigit():
                raise ValueError("events: no HTTP status line")
            if int(parts[1]) != 200:
                status, reply = _decode_reply(int(parts[1]), await asyncio.wait_for(reader.read(MAX_REPLY), timeout))
                raise DaemonError(_reply_error("events", status, reply))
            self.watching = True
            await self._check_state()
            events = SSEReader()
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), EVENTS_IDLE)
                if not chunk:
                    raise DaemonError("the daemon ended the events stream")
                for name, data in events.feed(chunk):
                    self._on_event(name, data)
        finally:
            self.watching = False
            writer.close()

    async def _check_state(self):
        """Asks the bottle's state: a change while the addon was not
        following its events is not missed."""
        try:
            v = await self._verdict(self._any_provider())
        except (OSError, RuntimeError, ValueError, asyncio.TimeoutError) as err:
            log.warning("bottlecap: cannot ask bottle %s's state (%s)", self.settings.bottle, _why(err))
            return
        self._note_state(v.get("state"), v.get("reason"))

    def _any_provider(self):
        for flight in self._flights.values():
            return flight.provider
        return sorted(set(self.settings.hosts.values()))[0]

    def _on_event(self, name, data):
        if name == "resync":  # the daemon dropped events this stream missed
            self._spawn(self._check_state())
            return
        if name != "state":
            return
        try:
            e = json.loads(data)
        except ValueError:
            return
        d = _dict(e.get("data")) if isinstance(e, dict) else None
        if d is None or _str(e.get("bottle")) not in ("", self.settings.bottle):
            return
        state, reason = _str(d.get("state")), _str(d.get("reason"))
        self._note_state(state, "bottle %s is %s%s" % (self.settings.bottle, state, ": " + reason if reason else ""))

    def _note_state(self, state, why):
        """Acts on the bottle's state: anything but active or warned cuts
        what is in flight and refuses what comes, saying why."""
        if not state or state in ACTIVE_STATES:
            self.blocked = ""
            return
        self.blocked = ("bottlecap: %s; the response was ended and new ones are refused until the bottle is active "
                        "again, so retrying will not help" % (why or "bottle %s is %s" % (self.settings.bottle, state)))
        for flight in list(self._flights.values()):
            if flight.live:
                self._cut(flight, self.blocked)

    # --- the event loop ---

    def _spawn(self, coro):
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    def _soon(self, fn, *args):
        """Runs fn after the event mitmproxy is handling (a stream function
        must not close a connection under itself)."""
        try:
            asyncio.get_running_loop().call_soon(fn, *args)
        except RuntimeError:  # no event loop: stub tests
            fn(*args)

    def _later(self, delay, fn, *args):
        try:
            asyncio.get_running_loop().call_later(delay, fn, *args)
        except RuntimeError:
            pass

    def done(self):
        """Reports what is queued (up to 5 s), then gives back what the pools
        hold, so that it does not wait for the TTL."""
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
        self.reporter.flush(timeout=5.0)
        for pool in self._pools.values():
            pool.stop()
            if pool.id:
                try:
                    call(self.settings.socket, "DELETE", "/v1/allowances/" + urllib.parse.quote(pool.id, safe=""),
                         timeout=1.0)
                except (OSError, http.client.HTTPException):
                    pass  # it expires on its own


def _cancelled():
    """Whether the running task was asked to stop. asyncio.wait_for before
    Python 3.12 may swallow a cancellation that comes as its inner call
    ends (with an error, here), so a loop that handles errors checks."""
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    return bool(cancelling and cancelling())


def _content(message):
    """A request's body, decoded; its raw bytes when its encoding cannot be undone."""
    try:
        return message.content or b""
    except ValueError:
        return getattr(message, "raw_content", None) or b""


def _why(err):
    if isinstance(err, asyncio.TimeoutError):
        return "it did not answer in time"
    return str(err) or type(err).__name__


BACKED_UP = ("bottlecap: usage reports are backing up (the budget daemon is not acknowledging them); the request "
             "was refused (fail-closed)")


addons = [Addon()] if __name__ != "__main__" and os.environ.get("BOTTLECAP_NO_AUTOLOAD") != "1" else []

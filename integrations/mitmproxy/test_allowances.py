"""Stub-flow tests of the addon's bounded spending (SPEC section 11): the
pre-flight estimate, the allowance pool, and counting and cutting a stream
as it passes. No mitmproxy needed; test_mitmdump.py runs the same against
the real mitmdump and a real daemon.

Run: python3 -m unittest discover -s integrations/mitmproxy
"""

import asyncio
import json
import math
import unittest

import test_bottlecap_addon as t
from test_bottlecap_addon import ba

run = t.run


class FakeDaemon:
    """POST /v1/allowances and DELETE /v1/allowances/{id} over a budget of
    `left` counted tokens, as the daemon answers them (SPEC section 11)."""

    def __init__(self, left, weight=1.0, state="active"):
        self.left, self.weight, self.state = left, weight, state
        self.held, self.calls, self.opened, self.down = {}, [], 0, False

    async def __call__(self, method, path, body):
        self.calls.append((method, path, body))
        if self.down:
            raise ba.DaemonError("connection refused")
        if method == "DELETE":
            aid = path.rsplit("/", 1)[1]
            if aid not in self.held:
                return 404, {"error": "not found"}
            self.left += self.held.pop(aid)
            return 204, None
        aid = body.get("id")
        if aid is None:
            self.opened += 1
            aid = "al-%d" % self.opened
            self.held[aid] = 0
        elif aid not in self.held:
            return 404, {"error": "allowance %s: not found" % aid}
        granted = 0 if self.state != "active" else min(body["tokens"], self.left)
        self.left -= granted
        self.held[aid] += granted
        reason = "" if granted == body["tokens"] else "bottle dev-1 budget: %d left" % self.left
        if self.state != "active":
            reason = "bottle dev-1 is %s: operator cutoff" % self.state
        return 200, {"id": aid, "granted": granted, "held": self.held[aid], "weight": self.weight,
                     "expires_at": "2099-01-01T00:00:00.123456789Z",
                     "verdict": {"allowed": self.left > 0, "scope": "bottle", "scope_id": "dev-1", "provider": "codex",
                                 "limit": 100000, "used": 100000 - self.left - sum(self.held.values()),
                                 "held": sum(self.held.values()), "remaining": self.left, "state": self.state,
                                 "reason": reason}}

    def asked(self):
        return [b["tokens"] for m, _, b in self.calls if m == "POST"]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


# --- the estimate -----------------------------------------------------------------

def fresh_estimate(fmt, body):
    """What a new addon estimates a request body at (the prior and its margin)."""
    return ba.Estimator().estimate("codex", fmt, t.PATHS[fmt], body).tokens


class EstimateTest(unittest.TestCase):
    def test_counts_what_the_model_reads_per_format(self):
        system, user, tool_result, tool_desc = "Be terse. " * 30, "Fix the bug in main.go. " * 50, "ok " * 400, "Runs a shell command."
        bodies = {
            ba.CHAT: {"model": "gpt-5", "stream": True, "max_tokens": 99999, "messages": [
                {"role": "system", "content": system}, {"role": "user", "content": [{"type": "text", "text": user}]},
                {"role": "tool", "tool_call_id": "c1", "content": tool_result}],
                "tools": [{"type": "function", "function": {"name": "sh", "description": tool_desc}}]},
            ba.RESPONSES: {"model": "gpt-5-codex", "instructions": system, "input": [
                {"role": "user", "content": [{"type": "input_text", "text": user}]},
                {"type": "function_call_output", "call_id": "c1", "output": tool_result}],
                "tools": [{"type": "function", "name": "sh", "description": tool_desc}]},
            ba.ANTHROPIC: {"model": "claude-sonnet-4-5", "max_tokens": 64000, "system": [{"type": "text", "text": system}],
                           "messages": [{"role": "user", "content": user}, {"role": "user", "content": [
                               {"type": "tool_result", "tool_use_id": "t1", "content": tool_result}]}],
                           "tools": [{"name": "sh", "description": tool_desc, "input_schema": {"type": "object"}}]},
            ba.GEMINI: {"systemInstruction": {"parts": [{"text": system}]}, "contents": [
                {"role": "user", "parts": [{"text": user}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "sh", "response": {"out": tool_result}}}]}],
                "tools": [{"functionDeclarations": [{"name": "sh", "description": tool_desc}]}]},
        }
        text = len((system + user + tool_result + tool_desc).encode())
        for fmt, b in bodies.items():
            got, model = ba.estimate_body(json.dumps(b).encode(), fmt, t.PATHS[fmt])
            self.assertEqual(model, b.get("model", "gemini-2.5-flash"), fmt)
            per_byte, _, tools = ba.PRIORS[ba.family_of(fmt, model)]
            want = math.ceil(text / per_byte) + tools
            # Every piece of text is counted, plus keys and roles: a little
            # more, never less, and never the parameters (max_tokens, stream).
            self.assertGreaterEqual(got, want, fmt)
            self.assertLess(got, want * 1.1, fmt)

    def test_attachments_count_flat_not_by_their_bytes(self):
        blob = "A" * 300000
        for fmt, part in ((ba.ANTHROPIC, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": blob}}),
                          (ba.CHAT, {"type": "image_url", "image_url": {"url": "data:image/png;base64," + blob}}),
                          (ba.GEMINI, {"inlineData": {"mimeType": "image/png", "data": blob}})):
            field = "contents" if fmt == ba.GEMINI else "messages"
            body = {field: [{"role": "user", "parts" if fmt == ba.GEMINI else "content": [part]}]}
            got, _ = ba.estimate_body(json.dumps(body).encode(), fmt)
            attachment = ba.PRIORS[ba.family_of(fmt, "")][1]
            self.assertGreaterEqual(got, attachment, fmt)
            self.assertLess(got, attachment + 20, fmt)

    def test_unparseable_body_counts_a_token_every_two_bytes(self):
        for body in (b"not json at all", b"[1,2,3]", b"{" * 10 + b"truncated", b"[" * 100000 + b"]" * 100000):
            got, model = ba.estimate_body(body, ba.CHAT)
            self.assertEqual((got, model), (math.ceil(len(body) / 3), ""), body[:20])
            self.assertFalse(ba.Estimator().estimate("codex", ba.CHAT, "", body).learns, "an unparseable body teaches")

    def test_calibration_rises_at_once_and_falls_slowly(self):
        e = ba.Estimator()
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 3000}]}).encode()
        est = e.estimate("codex", ba.CHAT, "/v1/chat/completions", body)
        self.assertEqual((est.tokens, est.model), (math.ceil(est.prior * (1 + ba.PRIOR_MARGIN)), "m"))
        e.learn("codex", est, 2 * est.prior)  # the first report replaces the prior's margin
        self.assertEqual(e.factor("codex", "m"), 2.0)
        e.learn("codex", est, 3 * est.prior)
        self.assertEqual(e.factor("codex", "m"), 2.5, "an under-estimate moves it halfway up")
        e.learn("codex", est, est.prior // 2)
        self.assertAlmostEqual(e.factor("codex", "m"), 2.5 - 0.05 * 2, places=2)
        self.assertEqual(e.factor("codex", "other"), 1 + ba.PRIOR_MARGIN, "calibrated across models")
        self.assertEqual(e.factor("claude", "m"), 1 + ba.PRIOR_MARGIN, "calibrated across providers")
        for _ in range(500):  # always 4x too high: it settles near, not below, the truth
            e.learn("codex", est, est.prior // 4)
        self.assertGreaterEqual(e.factor("codex", "m"), 0.25)
        self.assertLess(e.factor("codex", "m"), 0.3)
        e.learn("codex", est, est.prior * 1000)  # one strange report moves it no further than HIGH
        self.assertEqual(e.factor("codex", "m"), ba.Estimator.HIGH)
        e2 = ba.Estimator()
        e2.learn("codex", est, est.prior * 1000)
        self.assertEqual(e2.factor("codex", "m"), (1 + ba.PRIOR_MARGIN) * ba.Estimator.FIRST_STEP)

    def test_continued_responses_carry_their_context(self):
        e = ba.Estimator()
        body = json.dumps({"model": "gpt-5", "previous_response_id": "resp_1", "input": "next"}).encode()
        est = e.estimate("codex", ba.RESPONSES, "/v1/responses", body)
        self.assertFalse(est.learns, "a continuation of unknown size teaches")
        e.responded("codex", "resp_1", 50000)
        est2 = e.estimate("codex", ba.RESPONSES, "/v1/responses", body)
        self.assertTrue(est2.learns)
        self.assertEqual(est2.prior, est.prior + 50000)
        for chained in ({"conversation": "conv_1"}, {"cachedContent": "cachedContents/x"}):
            b = json.dumps(dict(chained, input="x")).encode()
            self.assertFalse(e.estimate("codex", ba.RESPONSES, "/v1/responses", b).learns, chained)

    def test_deltas_count_text_tool_arguments_and_thinking(self):
        events = {
            ba.ANTHROPIC: [{"type": "content_block_delta", "delta": {"type": "text_delta", "text": "héllo"}},
                           {"type": "content_block_delta", "delta": {"type": "input_json_delta", "partial_json": '{"a":1}'}},
                           {"type": "content_block_delta", "delta": {"type": "thinking_delta", "thinking": "hmm"}},
                           {"type": "content_block_delta", "delta": {"type": "signature_delta", "signature": "x" * 99}}],
            ba.CHAT: [{"object": "chat.completion.chunk", "choices": [{"delta": {"content": "héllo"}}]},
                      {"object": "chat.completion.chunk", "choices": [{"delta": {"tool_calls": [
                          {"function": {"arguments": '{"a":1}'}}]}}]},
                      {"object": "chat.completion.chunk", "choices": [{"delta": {"reasoning_content": "hmm"}}]}],
            ba.RESPONSES: [{"type": "response.output_text.delta", "delta": "héllo"},
                           {"type": "response.function_call_arguments.delta", "delta": '{"a":1}'},
                           {"type": "response.reasoning_summary_text.delta", "delta": "hmm"},
                           {"type": "response.output_text.done", "text": "héllo"},
                           {"type": "response.audio.delta", "delta": "x" * 99}],
            ba.GEMINI: [{"candidates": [{"content": {"parts": [{"text": "héllo"}]}}]},
                        {"candidates": [{"content": {"parts": [{"text": "hmm", "thought": True}]}}]}],
        }
        for fmt, evs in events.items():
            sse = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in evs)
            want = 6 + 3 + (7 if fmt != ba.GEMINI else 0)
            self.assertEqual(ba.parse_body(sse, fmt)["delta_bytes"], want, fmt)


# --- the pool -------------------------------------------------------------------

class PoolTest(unittest.TestCase):
    def pool(self, daemon, clock=None):
        return ba.Pool("dev-1", "implementer", "codex", daemon, clock or Clock())

    def test_reserves_from_what_it_holds_and_asks_only_for_the_shortfall(self):
        async def go():
            d = FakeDaemon(100000)
            p = self.pool(d)
            self.assertEqual(await p.take(1000, ba.OUTPUT_SLICE), 1000 + ba.OUTPUT_SLICE)
            self.assertEqual(d.asked(), [1000 + ba.OUTPUT_SLICE])
            p.settle(1000 + ba.OUTPUT_SLICE, 1200)  # a report settles what it spent
            self.assertEqual((p.held, p.reserved, p.free), (ba.OUTPUT_SLICE - 200, 0, ba.OUTPUT_SLICE - 200))
            self.assertEqual(await p.take(100, 0), 100)
            self.assertEqual(len(d.asked()), 1, "asked although the pool had enough")
            self.assertEqual(await p.take(5000, 0), 5000)
            self.assertEqual(d.asked()[1], 5000 - (ba.OUTPUT_SLICE - 200 - 100))
            self.assertEqual([b.get("id") for _, _, b in d.calls], [None, "al-1"])
        run(go())

    def test_too_little_granted_refuses_and_keeps_the_grant_for_others(self):
        async def go():
            d = FakeDaemon(3000)
            p = self.pool(d)
            self.assertEqual(await p.take(1000, ba.OUTPUT_SLICE), 0)
            self.assertEqual((p.held, p.reserved), (3000, 0))
            self.assertIn("3000", json.dumps(p.verdict) + "3000")
            self.assertEqual(await p.take(2000, 0), 2000)
            self.assertEqual(await p.take_upto(5000), 1000, "a stream takes what there is")
        run(go())

    def test_weight_converts_raw_tokens(self):
        async def go():
            d = FakeDaemon(100000, weight=2.5)
            p = self.pool(d)
            got = await p.take(1000, ba.OUTPUT_SLICE)
            self.assertEqual(got, 2500 + ba.OUTPUT_SLICE, "the first reply's weight applies to the same request")
            self.assertEqual(p.counted(3), 8)
        run(go())

    def test_expired_allowance_replaced_covering_what_is_in_flight(self):
        async def go():
            d = FakeDaemon(100000)
            p = self.pool(d)
            await p.take(1000, 0)
            d.left += d.held.pop("al-1")  # expired at the daemon
            self.assertEqual(await p.take(500, 0), 500)
            self.assertEqual(p.id, "al-2")
            self.assertEqual(d.asked()[-1], 1500, "the new allowance does not cover the request in flight")
            self.assertEqual((p.held, p.reserved), (1500, 1500))
        run(go())

    def test_renews_every_third_of_the_ttl_and_releases_when_idle(self):
        async def go():
            d, clock = FakeDaemon(100000), Clock()
            p = self.pool(d, clock)
            await p.take(1000, 0)
            ttl = p.ttl
            self.assertGreater(ttl, 3600, "expires_at far ahead: a TTL of its distance")
            p.ttl, p.renew_at = 30.0, clock.now + 10.0
            clock.now += 9.9
            await p.tick()
            self.assertEqual(len(d.calls), 1, "renewed early")
            clock.now += 0.2
            await p.tick()
            self.assertEqual(d.calls[-1][2], {"id": "al-1", "bottle": "dev-1", "agent": "implementer", "provider": "codex",
                                              "tokens": 0})
            p.settle(1000, 10)
            clock.now += ba.IDLE_RELEASE - 0.1
            await p.tick()
            self.assertEqual(p.id, "al-1", "released before it was idle")
            clock.now += 0.2
            await p.tick()
            self.assertEqual((p.id, p.held), (None, 0))
            self.assertEqual(d.calls[-1][:2], ("DELETE", "/v1/allowances/al-1"))
            self.assertEqual(d.left, 100000, "what it held went back")
        run(go())

    def test_renew_of_a_forgotten_allowance_covers_what_is_in_flight(self):
        async def go():
            d, clock = FakeDaemon(100000), Clock()
            p = self.pool(d, clock)
            await p.take(700, 0)
            d.left += d.held.pop("al-1")
            clock.now = p.renew_at
            await p.tick()
            self.assertEqual((p.id, p.held, d.asked()[-1]), ("al-2", 700, 700))
        run(go())

    def test_daemon_down(self):
        async def go():
            d = FakeDaemon(100000)
            d.down = True
            with self.assertRaises(ba.DaemonError):
                await self.pool(d).take(1, 0)
        run(go())

    def test_seconds_until(self):
        self.assertEqual(ba.seconds_until("garbage", 30.0), 30.0)
        self.assertEqual(ba.seconds_until("2000-01-01T00:00:00Z", 30.0), 0.0)
        far = ba.seconds_until("2099-01-01T00:00:00.5+01:00", 30.0) - ba.seconds_until("2099-01-01T00:00:00Z", 30.0)
        self.assertAlmostEqual(far, -3600 + 0.5, places=1)


# --- admission ------------------------------------------------------------------

def any_body(chars):
    """A request body every format's estimate reads chars of text in."""
    text = "x" * chars
    return json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": text}], "input": text,
                       "contents": [{"parts": [{"text": text}]}]}).encode()


def chat_body(chars, stream=True):
    return json.dumps({"model": "gpt-5", "stream": stream, "messages": [{"role": "user", "content": "x" * chars}]}).encode()


class AdmissionTest(unittest.TestCase):
    def test_refused_before_anything_is_sent_naming_the_budget(self):
        d = FakeDaemon(10000)
        a, made = t.addon(daemon=d)
        flow = t.request_flow(ba.CHAT, req_body=chat_body(30000))
        run(t.admit(a, flow))
        status, b, headers = made[0]
        self.assertEqual((status, headers["x-should-retry"]), (429, "false"))
        msg = b["error"]["message"]
        est = fresh_estimate(ba.CHAT, chat_body(30000))
        for part in ("scope bottle dev-1", "held ", "remaining 0", "estimated at %d" % est,
                     "%d for its output" % ba.OUTPUT_SLICE, "needs %d tokens" % (est + ba.OUTPUT_SLICE)):
            self.assertIn(part, msg)
        self.assertEqual(a._flights, {})

    def test_admitted_request_reports_with_its_allowance_and_settles(self):
        d = FakeDaemon(100000)
        a, made = t.addon(daemon=d)
        raw = t.body("openai-chat-nonstream.json")
        flow = t.stub_flow(ba.CHAT, raw, req_body=chat_body(300, stream=False))
        resp, flow.response = flow.response, None
        run(t.admit(a, flow))
        self.assertEqual(made, [])
        flow.response = resp
        a.responseheaders(flow)
        a.response(flow)
        r = a.reporter.reports[0]
        fx = t.fixture_of("openai-chat-nonstream.json")
        self.assertEqual((r["allowance"], r["output_tokens"], r["complete"]), ("al-1", fx["output_tokens"], True))
        pool = a._pools["codex"]
        self.assertEqual(pool.reserved, 0)
        self.assertEqual(pool.held, d.held["al-1"] - fx["total_tokens"])
        self.assertNotEqual(a.estimator.factor("codex", "gpt-5"), 1.0, "the complete report did not calibrate")

    def test_naive_mode_reports_no_allowance(self):
        a, _ = t.addon(t.NAIVE, verdict=lambda p: {"allowed": True})
        flow = t.stub_flow(ba.CHAT, t.body("openai-chat-nonstream.json"))
        resp, flow.response = flow.response, None
        run(t.admit(a, flow))
        flow.response = resp
        a.responseheaders(flow)
        a.response(flow)
        self.assertNotIn("allowance", a.reporter.reports[0])

    def test_blocked_bottle_refused_even_with_tokens_pooled(self):
        d = FakeDaemon(100000)
        a, made = t.addon(daemon=d)
        run(t.admit(a, t.request_flow(ba.CHAT, req_body=chat_body(10))))
        d.state = "cut_off"
        run(t.admit(a, t.request_flow(ba.CHAT, req_body=chat_body(10))))
        status, b, _ = made[0]
        self.assertEqual(status, 429)
        self.assertIn("bottle dev-1 is cut_off", b["error"]["message"])
        d.state = "active"
        a.watching = True  # the events say it is active again
        a._note_state("active", "")
        run(t.admit(a, t.request_flow(ba.CHAT, req_body=chat_body(10))))
        self.assertEqual(len(made), 1)

    def test_streamed_request_body_estimated_from_its_length(self):
        d = FakeDaemon(100000)
        a, made = t.addon(daemon=d)
        flow = t.request_flow(ba.CHAT)
        flow.request.stream = True
        flow.request.headers["content-length"] = "30000"
        run(a.requestheaders(flow))
        self.assertEqual(made, [])
        self.assertEqual(d.asked(), [math.ceil(10000 * (1 + ba.PRIOR_MARGIN)) + ba.OUTPUT_SLICE])
        a.stream_large_bodies = True
        flow = t.request_flow(ba.CHAT)
        run(a.requestheaders(flow))
        self.assertEqual(made[0][0], 429)
        self.assertIn("Content-Length", made[0][1]["error"]["message"])


# --- streams --------------------------------------------------------------------

def sse(fmt, events):
    return [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]


def text_event(fmt, text):
    return {ba.CHAT: {"object": "chat.completion.chunk", "id": "c1", "choices": [{"delta": {"content": text}}]},
            ba.RESPONSES: {"type": "response.output_text.delta", "delta": text},
            ba.ANTHROPIC: {"type": "content_block_delta", "delta": {"type": "text_delta", "text": text}},
            ba.GEMINI: {"candidates": [{"content": {"parts": [{"text": text}]}}], "responseId": "g1"}}[fmt]


class StreamTest(unittest.TestCase):
    async def streaming(self, fmt, daemon, req_chars=300, headers=None):
        """An admitted flow whose event stream has begun."""
        a, made = t.addon(daemon=daemon)
        a._end = lambda flight: None  # no mitmproxy: nothing to close
        flow = t.stub_flow(fmt, None, headers=headers or {"content-type": "text/event-stream"},
                           req_body=chat_body(req_chars))
        resp, flow.response = flow.response, None
        await t.admit(a, flow)
        self.assertEqual(made, [])
        flow.response = resp
        a.responseheaders(flow)
        return a, flow, a._flights[flow.id]

    def test_counts_output_and_extends_ahead_of_need(self):
        async def go():
            d = FakeDaemon(1000000)
            a, flow, flight = await self.streaming(ba.ANTHROPIC, d)
            first = flight.tokens
            chunk = sse(ba.ANTHROPIC, [text_event(ba.ANTHROPIC, "w" * 300)])[0]
            per = ba.output_tokens(ba.ANTHROPIC, "gpt-5", 300) + 1  # a delta's tokens, rounding included
            passed = b""
            for _ in range(200):
                passed += flow.response.stream(chunk)
                await asyncio.sleep(0)  # the extension runs on the loop
                self.assertLessEqual(flight.spent() + ba.OUTPUT_SLICE // 2 - per, flight.tokens, "not ahead of need")
            self.assertFalse(flight.cut)
            self.assertEqual(passed, chunk * 200, "a counted stream was changed")
            self.assertGreater(flight.tokens, first + 200 * (per - 1) - ba.OUTPUT_SLICE, "not extended")
            self.assertLess(flight.tokens, flight.spent() + ba.OUTPUT_SLICE + per, "extended more than a slice ahead")
            self.assertGreater(len(d.asked()), 4)
        run(go())

    def test_nothing_more_granted_ends_each_format_with_its_error_event(self):
        for fmt in (ba.CHAT, ba.RESPONSES, ba.ANTHROPIC, ba.GEMINI):
            async def go():
                # enough to admit, nothing more
                d = FakeDaemon(fresh_estimate(fmt, any_body(3000)) + ba.OUTPUT_SLICE)
                a, made = t.addon(daemon=d)
                a._end = lambda flight: None
                flow = t.stub_flow(fmt, None, headers={"content-type": "text/event-stream"}, req_body=any_body(3000))
                resp, flow.response = flow.response, None
                await t.admit(a, flow)
                self.assertEqual(made, [])
                flow.response = resp
                a.responseheaders(flow)
                flight = a._flights[flow.id]
                out, deltas = [], 0
                for i in range(200):
                    chunk = sse(fmt, [text_event(fmt, "x" * 300)])[0]
                    out.append(flow.response.stream(chunk))
                    deltas += 300
                    await asyncio.sleep(0)
                    if flight.cut:
                        break
                self.assertTrue(flight.cut, fmt)
                self.assertEqual(flow.response.stream(sse(fmt, [text_event(fmt, "more")])[0]), b"", "passed after the cut")
                self.assertEqual(flow.response.stream(b""), b"")
                err = out[-1]
                self.assertTrue(all(o.endswith(b"\n\n") for o in out[:-1]))
                self.check_error_event(fmt, err, "allowance ran out")
                a.response(flow)
                r = a.reporter.reports[0]
                self.assertFalse(r["complete"])
                self.assertGreaterEqual(r["output_tokens"], ba.output_tokens(fmt, "m", deltas))
                self.assertEqual(r["input_tokens"], flight.est.tokens, "input not the estimate when the provider's did not come")
                self.assertGreaterEqual(flight.est.tokens, 1000)
                self.assertEqual([p.reserved for p in a._pools.values()], [0])
            with self.subTest(fmt=fmt):
                run(go())

    def check_error_event(self, fmt, raw, text):
        """Reads an error event as the provider's SDK does."""
        lines = raw.decode().strip().split("\n")
        fields = dict(line.split(": ", 1) for line in lines)
        data = json.loads(fields["data"])
        if fmt == ba.ANTHROPIC:
            self.assertEqual((fields.get("event"), data["type"], data["error"]["type"]), ("error", "error", "rate_limit_error"))
            msg = data["error"]["message"]
        elif fmt == ba.RESPONSES:
            self.assertEqual((fields.get("event"), data["type"], data["response"]["status"]), ("response.failed", "response.failed", "failed"))
            self.assertEqual(data["response"]["error"]["code"], "insufficient_quota")
            msg = data["error"]["message"]
            self.assertEqual(data["response"]["error"]["message"], msg)
        elif fmt == ba.GEMINI:
            self.assertNotIn("event", fields)
            self.assertEqual((data["error"]["code"], data["error"]["status"]), (429, "RESOURCE_EXHAUSTED"))
            msg = data["error"]["message"]
        else:
            self.assertNotIn("event", fields)
            self.assertEqual(data["error"]["code"], "insufficient_quota")
            msg = data["error"]["message"]
        self.assertIn(text, msg)
        self.assertIn("bottlecap", msg)

    def test_bottle_leaving_active_cuts_after_the_last_whole_event(self):
        async def go():
            a, flow, flight = await self.streaming(ba.ANTHROPIC, FakeDaemon(1000000))
            whole = sse(ba.ANTHROPIC, [text_event(ba.ANTHROPIC, "hello")])[0]
            self.assertEqual(flow.response.stream(whole + whole[:20]), whole, "a partial event passed")
            a._on_event("state", json.dumps({"type": "state", "bottle": "dev-1",
                                             "data": {"state": "cut_off", "reason": "operator cutoff"}}).encode())
            self.assertTrue(flight.cut)
            self.assertIn("bottle dev-1 is cut_off: operator cutoff", a.blocked)
            err = flow.response.stream(whole[20:])
            self.check_error_event(ba.ANTHROPIC, err, "operator cutoff")
            a._on_event("state", json.dumps({"type": "state", "bottle": "other", "data": {"state": "active"}}).encode())
            self.assertTrue(a.blocked, "another bottle's event counted")
            a._on_event("state", json.dumps({"type": "state", "bottle": "dev-1", "data": {"state": "warned"}}).encode())
            self.assertEqual(a.blocked, "")
        run(go())

    def test_pending_counts_as_leaving(self):
        async def go():
            a, flow, flight = await self.streaming(ba.CHAT, FakeDaemon(1000000))
            a._note_state("pending", "")
            self.assertIn("bottle dev-1 is pending", flight.cut)
        run(go())

    def test_compressed_or_sized_stream_cut_without_an_event(self):
        async def go():
            for headers in ({"content-type": "text/event-stream", "content-encoding": "gzip"},
                            {"content-type": "text/event-stream", "content-length": "9999"}):
                a, flow, flight = await self.streaming(ba.CHAT, FakeDaemon(1000000), headers=headers)
                self.assertFalse(flight.inject, headers)
                a._note_state("cut_off", "")
                self.assertEqual(flow.response.stream(b"data: {}\n\n"), b"", headers)
        run(go())

    def test_client_gone_charged_no_less_than_what_passed(self):
        for env in (t.NAIVE, {}):
            a, made = t.addon(env, verdict=lambda p: {"allowed": True}, daemon=FakeDaemon(1000000))
            flow = t.stub_flow(ba.CHAT, None, headers={"content-type": "text/event-stream"}, req_body=chat_body(3000))
            resp, flow.response = flow.response, None
            run(t.admit(a, flow))
            flow.response = resp
            a.responseheaders(flow)
            for _ in range(10):
                flow.response.stream(sse(ba.CHAT, [text_event(ba.CHAT, "y" * 30)])[0])
            a.error(flow)
            r = a.reporter.reports[0]
            self.assertEqual((r["complete"], r["output_tokens"]), (False, ba.output_tokens(ba.CHAT, "gpt-5", 300)), env)
            self.assertEqual(r["input_tokens"], fresh_estimate(ba.CHAT, chat_body(3000)), env)


# --- the output cap a request states ------------------------------------------------

def capped_body(fmt, cap, chars=300):
    """A request body of fmt stating an output cap of cap tokens (none when
    cap is None) in the field its provider reads."""
    text = "x" * chars
    body = {ba.CHAT: {"model": "gpt-5", "stream": True, "messages": [{"role": "user", "content": text}]},
            ba.RESPONSES: {"model": "gpt-5", "stream": True, "input": text},
            ba.ANTHROPIC: {"model": "claude-haiku-4-5", "stream": True, "max_tokens": 8192,
                           "messages": [{"role": "user", "content": text}]},
            ba.GEMINI: {"contents": [{"role": "user", "parts": [{"text": text}]}]}}[fmt]
    if cap is not None:
        if fmt == ba.CHAT:
            body["max_completion_tokens"] = cap
        elif fmt == ba.RESPONSES:
            body["max_output_tokens"] = cap
        elif fmt == ba.ANTHROPIC:
            body["max_tokens"] = cap
        else:
            body["generationConfig"] = {"maxOutputTokens": cap}
    return json.dumps(body).encode()


class OutputCapTest(unittest.TestCase):
    """The cap is read where each provider reads it, and trusted only when
    the addon is sure the provider reads the same number (the Go meter's
    TestOutputCap)."""

    def cap(self, fmt, raw):
        return ba.Estimator().estimate("codex", fmt, t.PATHS[fmt], raw.encode()).cap

    def test_each_format_reads_its_own_field(self):
        msgs = '"messages":[{"role":"user","content":"hi"}]'
        for fmt, raw, want in (
                (ba.ANTHROPIC, '{"max_tokens":200,%s}' % msgs, 200),
                (ba.ANTHROPIC, '{"max_output_tokens":200,"max_completion_tokens":200,%s}' % msgs, 0),
                (ba.CHAT, '{"max_completion_tokens":300,%s}' % msgs, 300),
                (ba.CHAT, '{"max_tokens":300,"max_completion_tokens":50,%s}' % msgs, 300),
                (ba.CHAT, '{"max_completion_tokens":300,"n":3,%s}' % msgs, 900),
                (ba.CHAT, '{"n":3,%s}' % msgs, 0),
                (ba.CHAT, '{"prompt":"hi","max_tokens":100,"n":2,"best_of":5}', 500),
                (ba.CHAT, '{"prompt":"hi","max_tokens":100,"best_of":1.5}', 0),
                (ba.CHAT, '{"max_tokens":null,"max_completion_tokens":300,%s}' % msgs, 0),
                (ba.RESPONSES, '{"max_output_tokens":512,"input":"hi"}', 512),
                (ba.RESPONSES, '{"max_tokens":512,"input":"hi"}', 0),
                (ba.GEMINI, '{"contents":[],"generationConfig":{"temperature":0.2,"maxOutputTokens":256}}', 256),
                (ba.GEMINI, '{"generation_config":{"max_output_tokens":256},"contents":[]}', 256),
                (ba.GEMINI, '{"generationConfig":{"candidateCount":2,"maxOutputTokens":256},"contents":[]}', 512),
                (ba.GEMINI, '{"maxOutputTokens":10,"contents":[]}', 0),
                (ba.GEMINI, '{"generationConfig":{"responseSchema":{"maxOutputTokens":10}},"contents":[]}', 0),
                (ba.GEMINI, '{"generationConfig":[{"maxOutputTokens":10}],"contents":[]}', 0)):
            with self.subTest(fmt=fmt, body=raw):
                self.assertEqual(self.cap(fmt, raw), want)

    def test_compaction_states_no_cap(self):
        body = b'{"model":"gpt-5","input":"hi","max_output_tokens":200}'
        self.assertEqual(ba.Estimator().estimate("codex", ba.RESPONSES, "/v1/responses/compact", body).cap, 0)
        self.assertEqual(ba.Estimator().estimate("codex", ba.RESPONSES, "/v1/responses", body).cap, 200)

    def test_nested_fields_of_the_same_name_are_not_the_cap(self):
        raw = ('{"messages":[{"role":"user","content":[{"type":"tool_result","content":"x","max_tokens":5}]}],'
               '"metadata":{"max_tokens":5},"tools":[{"name":"f","input_schema":{"properties":{"max_tokens":{}}}}],"max_tokens":900}')
        self.assertEqual(self.cap(ba.ANTHROPIC, raw), 900)
        self.assertEqual(self.cap(ba.RESPONSES, '{"input":[{"content":"hi","max_output_tokens":5}],"text":{"max_output_tokens":5}}'), 0)

    def test_anything_but_a_positive_integer_states_no_cap(self):
        for value in ('"200"', "200.0", "2e2", "0", "-200", "true", "null", '{"v":200}', "[200]",
                      "99999999999999999999999", str(ba.MAX_STATED_CAP + 1)):
            with self.subTest(value=value):
                self.assertEqual(self.cap(ba.ANTHROPIC, '{"max_tokens":%s,"messages":[]}' % value), 0)
        self.assertEqual(self.cap(ba.ANTHROPIC, '{"max_tokens":%d,"messages":[]}' % ba.MAX_STATED_CAP), ba.MAX_STATED_CAP)
        self.assertEqual(self.cap(ba.ANTHROPIC, '{"max_tokens":0200,"messages":[]}'), 0, "not JSON: no cap")

    def test_duplicates_count_at_the_larger_and_doubt_at_none(self):
        self.assertEqual(self.cap(ba.ANTHROPIC, '{"max_tokens":200,"messages":[],"max_tokens":4000}'), 4000)
        self.assertEqual(self.cap(ba.ANTHROPIC, '{"max_tokens":4000,"messages":[],"max_tokens":200}'), 4000)
        self.assertEqual(self.cap(ba.ANTHROPIC, '{"max_tokens":200,"messages":[],"max_tokens":"x"}'), 0)
        # an escaped key decodes to a duplicate
        self.assertEqual(self.cap(ba.ANTHROPIC, '{"max_tokens":200,"max\\u005ftokens":100000,"messages":[]}'), 100000)
        self.assertEqual(self.cap(ba.CHAT, '{"max_tokens":200,"MAX_TOKENS":100000,"messages":[]}'), 0, "case")
        self.assertEqual(self.cap(ba.GEMINI, '{"generationConfig":{"maxOutputTokens":20,"MaxOutputTokens":9000}}'), 0)
        self.assertEqual(self.cap(ba.GEMINI, '{"generationConfig":{"maxOutputTokens":20},"generationConfig":{"maxOutputTokens":90}}'), 90)


class CapAdmissionTest(unittest.TestCase):
    def test_small_budget_admits_a_capped_request_and_refuses_an_uncapped_one(self):
        for fmt in (ba.CHAT, ba.RESPONSES, ba.ANTHROPIC, ba.GEMINI):
            with self.subTest(fmt=fmt):
                d = FakeDaemon(1000)
                a, made = t.addon(daemon=d)
                run(t.admit(a, t.request_flow(fmt, req_body=capped_body(fmt, None))))
                self.assertEqual(len(made), 1, "the uncapped request was admitted")
                status, b, _ = made[0]
                self.assertEqual(status, 429)
                self.assertIn("%d for its output" % ba.OUTPUT_SLICE, b["error"]["message"])
                flow = t.request_flow(fmt, req_body=capped_body(fmt, 200))
                run(t.admit(a, flow))
                self.assertEqual(len(made), 1, "the capped request was refused: %s" % made[1:])
                flight = a._flights[flow.id]
                self.assertEqual(flight.tokens, fresh_estimate(fmt, capped_body(fmt, 200)) + 200)


class CapStreamTest(unittest.TestCase):
    async def streaming(self, fmt, daemon, cap):
        a, made = t.addon(daemon=daemon)
        a._end = lambda flight: None  # no mitmproxy: nothing to close
        flow = t.stub_flow(fmt, None, headers={"content-type": "text/event-stream"}, req_body=capped_body(fmt, cap))
        resp, flow.response = flow.response, None
        await t.admit(a, flow)
        self.assertEqual(made, [])
        flow.response = resp
        a.responseheaders(flow)
        return a, flow, a._flights[flow.id]

    def test_stream_past_its_cap_is_cut(self):
        """A request states 200 tokens; its upstream ignores that and
        streams on. The budget is far from spent, but once the output could
        no longer fit the cap the stream ends with an error event saying so."""
        for fmt in (ba.CHAT, ba.RESPONSES, ba.ANTHROPIC, ba.GEMINI):
            async def go():
                a, flow, flight = await self.streaming(fmt, FakeDaemon(1000000), 200)
                out, passed = [], 0
                for _ in range(1000):
                    out.append(flow.response.stream(sse(fmt, [text_event(fmt, "tok ")])[0]))
                    passed += 4
                    await asyncio.sleep(0)
                    if flight.cut:
                        break
                self.assertTrue(flight.cut)
                bound = 200 * ba.CAP_BYTES_PER_TOKEN + ba.CAP_SLACK_BYTES
                self.assertEqual(passed, bound + 4, "cut elsewhere than just past the bound")
                StreamTest.check_error_event(self, fmt, out[-1], "output cap the request states (200 tokens)")
                a.response(flow)
                r = a.reporter.reports[0]
                self.assertFalse(r["complete"])
                self.assertGreaterEqual(r["output_tokens"], ba.output_tokens(fmt, "m", passed - 4))
            with self.subTest(fmt=fmt):
                run(go())

    def test_stream_within_its_cap_passes_whole_and_extends_by_the_cap(self):
        """200 tokens of 4 bytes, which the prior counts as more than 200:
        with 1,000 tokens left the stream takes small extensions (never a
        whole slice) as its count passes the cap, and is not cut."""
        async def go():
            d = FakeDaemon(1000)
            a, flow, flight = await self.streaming(ba.ANTHROPIC, d, 200)
            first = flight.tokens
            for _ in range(200):
                flow.response.stream(sse(ba.ANTHROPIC, [text_event(ba.ANTHROPIC, "tok ")])[0])
                await asyncio.sleep(0)
            self.assertFalse(flight.cut)
            self.assertGreater(flight.tokens, first, "not extended past the cap's count")
            self.assertTrue(all(n < ba.OUTPUT_SLICE for n in d.asked()[1:]), d.asked())
        run(go())


class EndTest(unittest.TestCase):
    """What a cut does to the connections, with mitmproxy's internals faked."""

    def setUp(self):
        self.calls = []
        self.ends = True
        self.patch("end_response", lambda flow: self.calls.append("end") or self.ends)
        self.patch("close_upstream", lambda flow: self.calls.append("close") or True)
        self.patch("CUT_GRACE", 0.0)

    def patch(self, name, value):
        old = getattr(ba, name)
        setattr(ba, name, value)
        self.addCleanup(setattr, ba, name, old)

    async def cut_flight(self):
        a, made = t.addon(daemon=FakeDaemon(1000000))
        flow = t.stub_flow(ba.ANTHROPIC, None, headers={"content-type": "text/event-stream"}, req_body=any_body(30))
        resp, flow.response = flow.response, None
        await t.admit(a, flow)
        flow.response = resp
        a.responseheaders(flow)
        a._note_state("cut_off", "operator cutoff")
        await asyncio.sleep(0)
        return a, flow

    def test_http1_upstream_ends_at_once_and_the_last_call_sends_the_error(self):
        async def go():
            a, flow = await self.cut_flight()
            self.assertEqual(self.calls, ["end"])
            err = flow.response.stream(b"")  # mitmproxy's last call, as the response ends
            self.assertIn(b"event: error", err)
            await asyncio.sleep(0)
            self.assertEqual(self.calls, ["end"], "closed twice")
        run(go())

    def test_otherwise_the_next_chunk_carries_the_error_then_the_upstream_closes(self):
        async def go():
            self.ends = False
            a, flow = await self.cut_flight()
            self.assertEqual(self.calls, ["end"])
            err = flow.response.stream(sse(ba.ANTHROPIC, [text_event(ba.ANTHROPIC, "late")])[0])
            self.assertIn(b"event: error", err)
            await asyncio.sleep(0)
            self.assertEqual(self.calls, ["end", "end", "close"])
        run(go())

    def test_a_silent_upstream_is_closed_after_the_grace(self):
        async def go():
            self.ends = False
            a, flow = await self.cut_flight()
            await asyncio.sleep(0.01)
            self.assertEqual(self.calls, ["end", "close"])
            self.assertNotIn(b"data: {}", flow.response.stream(b"data: {}\n\n"), "passed after the close")
        run(go())


class SSEReaderTest(unittest.TestCase):
    def test_splits_events_fed_in_pieces(self):
        raw = b": bottlecap events\n\nevent: state\ndata: {\"a\":1}\n\n: keep-alive\n\nevent: resync\ndata: {}\r\n\r\n"
        r, got = ba.SSEReader(), []
        for i in range(len(raw)):
            got += r.feed(raw[i:i + 1])
        self.assertEqual(got, [("state", b'{"a":1}'), ("resync", b"{}")])

    def test_events_end(self):
        self.assertEqual(ba.events_end(b"data: a\n\ndata: b"), 9)
        self.assertEqual(ba.events_end(b"data: a\r\n\r\ndata"), 11)
        self.assertEqual(ba.events_end(b"data: a\r\rx"), 9)
        self.assertEqual(ba.events_end(b"data: a\n"), 0)


if __name__ == "__main__":
    unittest.main()

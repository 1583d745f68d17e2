package usage

import "github.com/bot-bottle/bottlecap/budget"

// applyChat: usage arrives whole (non-stream body, or the include_usage
// chunk); "usage": null on other chunks must not erase it.
func (s *state) applyChat(e *envelope) {
	u := e.Usage
	if u == nil || (u.PromptTokens == nil && u.CompletionTokens == nil) {
		return
	}
	cached := u.PromptTokensDetails.cached()
	s.usage = budget.Usage{
		Input:     sub(count(u.PromptTokens), cached),
		CacheRead: cached,
		Output:    count(u.CompletionTokens),
		Reasoning: u.CompletionTokensDetails.reasoning(),
	}
	s.found = true
	s.hasInput = s.hasInput || u.PromptTokens != nil
	s.hasOutput = s.hasOutput || u.CompletionTokens != nil
	if e.Object != "chat.completion.chunk" || len(e.Choices) == 0 || chatFinished(e) {
		s.complete = true
	}
}

// chatFinished reports whether a chunk closes its choices. Usage on such a
// chunk (continuous usage stats) is final; usage on an earlier one is not.
func chatFinished(e *envelope) bool {
	for _, c := range e.Choices {
		if c.FinishReason != nil && *c.FinishReason != "" {
			return true
		}
	}
	return false
}

// applyResponses: a stream's terminal event (response.completed,
// .incomplete, .failed) carries response.usage; a whole body carries usage
// at the top and is final when it has any.
func (s *state) applyResponses(e *envelope) {
	u := e.Usage
	if r := e.Response; r != nil {
		s.identify(r.ID, r.Model)
		u = r.Usage
	} else {
		s.identify(e.ID, e.Model)
	}
	if u != nil && (u.InputTokens != nil || u.OutputTokens != nil) {
		cached := u.InputTokensDetails.cached()
		s.usage = budget.Usage{
			Input:     sub(count(u.InputTokens), cached),
			CacheRead: cached,
			Output:    count(u.OutputTokens),
			Reasoning: u.OutputTokensDetails.reasoning(),
		}
		s.found = true
		s.hasInput = s.hasInput || u.InputTokens != nil
		s.hasOutput = s.hasOutput || u.OutputTokens != nil
	}
	switch e.Type {
	case "response.completed", "response.incomplete", "response.failed":
		s.complete = true
	case "":
		s.complete = s.complete || s.found
	}
}

// applyAnthropic: message_start sets every count (its output is a
// placeholder); message_delta's usage is cumulative and overrides the fields
// it carries and is the final usage event; a whole body ("type":"message")
// is final at once. usage.iterations, when present, is the billable usage.
func (s *state) applyAnthropic(e *envelope) {
	switch e.Type {
	case "message_start":
		if m := e.Message; m != nil {
			s.identify(m.ID, m.Model)
			if m.Usage != nil {
				s.usage = budget.Usage{}
				s.anthropicUsage(m.Usage)
				s.hasInput = s.hasInput || m.Usage.InputTokens != nil
			}
		}
	case "message_delta", "message", "":
		if e.Usage != nil {
			s.identify(e.ID, e.Model)
			s.anthropicUsage(e.Usage)
			s.complete = true
			s.hasInput = s.hasInput || e.Usage.InputTokens != nil || e.Type == "message"
			s.hasOutput = s.hasOutput || e.Usage.OutputTokens != nil
		}
	}
}

// anthropicUsage overrides the counts u carries and takes its iterations.
func (s *state) anthropicUsage(u *wireUsage) {
	override := func(dst *int64, p *int64) {
		if p != nil {
			*dst = count(p)
		}
	}
	override(&s.usage.Input, u.InputTokens)
	override(&s.usage.CacheRead, u.CacheReadInputTokens)
	override(&s.usage.CacheWrite, u.CacheCreationInputTokens)
	override(&s.usage.Output, u.OutputTokens)
	if len(u.Iterations) > 0 {
		s.iter, s.hasIter = sumIterations(u.Iterations), true
	}
	s.found = true
}

// sumIterations is the billable usage of a response that sampled several
// times (compaction, server tools): the top-level counts describe only the
// last iteration.
func sumIterations(its []wireUsage) budget.Usage {
	var sum budget.Usage
	for i := range its {
		it := &its[i]
		sum.Input = add(sum.Input, count(it.InputTokens))
		sum.CacheRead = add(sum.CacheRead, count(it.CacheReadInputTokens))
		sum.CacheWrite = add(sum.CacheWrite, count(it.CacheCreationInputTokens))
		sum.Output = add(sum.Output, count(it.OutputTokens))
	}
	return sum
}

// applyGemini: every chunk's usageMetadata is cumulative, so the last one
// wins; the response is complete once a candidate has finished (or the
// prompt was blocked) and usage has been seen.
func (s *state) applyGemini(e *geminiFields) {
	for _, c := range e.Candidates {
		if c.FinishReason != "" {
			s.finished = true
		}
	}
	if e.PromptFeedback != nil && e.PromptFeedback.BlockReason != "" {
		s.finished = true
	}
	if m := e.UsageMetadata; m != nil {
		cached := count(m.CachedContentTokenCount)
		thoughts := count(m.ThoughtsTokenCount)
		s.usage = budget.Usage{
			Input:     add(sub(count(m.PromptTokenCount), cached), count(m.ToolUsePromptTokenCount)),
			CacheRead: cached,
			Output:    add(count(m.CandidatesTokenCount), thoughts),
			Reasoning: thoughts,
		}
		s.found = true
		s.hasInput = s.hasInput || m.PromptTokenCount != nil
		s.hasOutput = s.hasOutput || m.CandidatesTokenCount != nil || m.ThoughtsTokenCount != nil
	}
	s.complete = s.found && s.finished
}

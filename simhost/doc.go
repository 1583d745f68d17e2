// Package simhost simulates a bot-bottle host: bottle trees, sidecars that
// ask the gate and report realistic Anthropic and OpenAI usage, and an
// enforcer that only records what it would do. `bottlecap demo` wires them
// to a real daemon; the benchmarks take their data sets from the same
// generators (Report, Fleet), so every synthetic workload has one source.
//
// Only the commands import it (deps_test holds that); the daemon and the
// core never do, and it starts no daemon itself.
package simhost

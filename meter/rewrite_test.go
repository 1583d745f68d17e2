package meter

import "testing"

func TestWithIncludeUsage(t *testing.T) {
	tests := []struct {
		name, in, want string // want "" = unchanged
	}{
		{"not streaming", `{"model":"m","messages":[]}`, ""},
		{"stream false", `{"model":"m","stream":false}`, ""},
		{"stream true", `{"model":"m","stream":true}`, `{"stream_options":{"include_usage":true},"model":"m","stream":true}`},
		{"spaced", "{\n  \"stream\": true\n}", "{\"stream_options\":{\"include_usage\":true},\n  \"stream\": true\n}"},
		{"options null", `{"stream":true,"stream_options":null}`, `{"stream":true,"stream_options":{"include_usage":true}}`},
		{"options empty", `{"stream":true,"stream_options":{}}`, `{"stream":true,"stream_options":{"include_usage":true}}`},
		{"options other", `{"stream":true,"stream_options":{"x":1}}`, `{"stream":true,"stream_options":{"include_usage":true,"x":1}}`},
		{"explicit false", `{"stream":true,"stream_options":{"include_usage":false,"x":1}}`, `{"stream":true,"stream_options":{"include_usage":true,"x":1}}`},
		{"already true", `{"stream":true,"stream_options":{"include_usage":true}}`, ""},
		{"nested stream key", `{"metadata":{"stream":true}}`, ""},
		{"options not object", `{"stream":true,"stream_options":[1]}`, ""},
		{"not json", `{"stream":true,`, ""},
		{"array", `[{"stream":true}]`, ""},
		{"unicode", `{"content":"h\u00e9 \"stream\"","stream":true}`, `{"stream_options":{"include_usage":true},"content":"h\u00e9 \"stream\"","stream":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := withIncludeUsage([]byte(tt.in))
			switch {
			case tt.want == "" && ok:
				t.Errorf("changed to %s, want unchanged", got)
			case tt.want != "" && (!ok || string(got) != tt.want):
				t.Errorf("got %s (%v), want %s", got, ok, tt.want)
			}
		})
	}
}

package occupancy

import (
	"strings"
	"testing"
)

func iv(deployment, host string, start, end int64) Interval {
	return Interval{Service: "svc", Host: host, Deployment: deployment, Start: start, End: end}
}

func TestOverlapsAreTwoDeploymentsOnOneNodeAtOneInstant(t *testing.T) {
	tests := []struct {
		name string
		in   []Interval
		want int
	}{
		{"one after the other", []Interval{iv("d-1", "h1", 0, 10), iv("d-2", "h1", 11, 20)}, 0},
		{"taken the instant it was given back", []Interval{iv("d-1", "h1", 0, 10), iv("d-2", "h1", 10, 20)}, 1},
		{"one inside the other", []Interval{iv("d-1", "h1", 0, 100), iv("d-2", "h1", 10, 20), iv("d-3", "h1", 30, 40)}, 2},
		{"different nodes at once", []Interval{iv("d-1", "h1", 0, 10), iv("d-2", "h2", 0, 10)}, 0},
		{"one deployment's two runs", []Interval{iv("d-1", "h1", 0, 10), iv("d-1", "h1", 5, 20)}, 0},
		{"out of order", []Interval{iv("d-2", "h1", 5, 20), iv("d-1", "h1", 0, 10)}, 1},
		{"same host, other service", []Interval{iv("d-1", "h1", 0, 10), {Service: "other", Host: "h1", Deployment: "d-2", Start: 0, End: 10}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Overlaps(tc.in); len(got) != tc.want {
				t.Errorf("%d overlaps, want %d: %v", len(got), tc.want, got)
			}
		})
	}
}

func TestReadPairsStartsWithEndsAndRefusesWhatItDidNotWrite(t *testing.T) {
	file := `{"event":"start","run":"1-a-1","kind":"deploy","service":"svc","host":"h1","deployment":"d-1","pid":1,"ns":5}
{"event":"start","run":"2-b-1","kind":"deploy","service":"svc","host":"h1","deployment":"d-2","pid":2,"ns":7}
{"event":"end","run":"1-a-1","kind":"deploy","service":"svc","host":"h1","deployment":"d-1","pid":1,"ns":9}
`
	closed, open, err := Read(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(closed) != 1 || closed[0].Start != 5 || closed[0].End != 9 || closed[0].Deployment != "d-1" {
		t.Errorf("closed: %+v", closed)
	}
	if len(open) != 1 || open[0].Deployment != "d-2" {
		t.Errorf("open: %+v", open)
	}
	for name, bad := range map[string]string{
		"half a line":        `{"event":"start","run":"1-a-1","ki`,
		"an end never begun": `{"event":"end","run":"1-a-1"}`,
		"an unknown event":   `{"event":"pause","run":"1-a-1"}`,
		"a run begun twice":  `{"event":"start","run":"1-a-1"}` + "\n" + `{"event":"start","run":"1-a-1"}`,
	} {
		if _, _, err := Read(strings.NewReader(bad)); err == nil {
			t.Errorf("%s: read without an error", name)
		}
	}
}

package occupancy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// Interval is one run's occupancy of one node, from its start line to its end line.
type Interval struct {
	Run, Kind, Service, Host, Deployment string
	PID                                  int
	Start, End                           int64 // Unix nanoseconds
}

// Overlap is two different deployments (or passes) that occupied one node at once.
type Overlap struct {
	Service, Host string
	First, Second Interval
}

func (o Overlap) String() string {
	return fmt.Sprintf("%s/%s: %s (pid %d, %d-%d) and %s (pid %d, %d-%d)", o.Service, o.Host,
		o.First.Deployment, o.First.PID, o.First.Start, o.First.End, o.Second.Deployment, o.Second.PID, o.Second.Start, o.Second.End)
}

// Read pairs the lines of an occupancy file into intervals. A start without its end (a run still going,
// or a process that died) is returned in open; a line that is not one the executor writes is an error.
func Read(r io.Reader) (closed []Interval, open []Line, err error) {
	started := map[string]Line{}
	var order []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		var l Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, nil, fmt.Errorf("occupancy line %d: %w: %q", n, err, sc.Text())
		}
		switch l.Event {
		case "start":
			if _, dup := started[l.Run]; dup {
				return nil, nil, fmt.Errorf("occupancy line %d: run %s started twice", n, l.Run)
			}
			started[l.Run] = l
			order = append(order, l.Run)
		case "end":
			s, ok := started[l.Run]
			if !ok {
				return nil, nil, fmt.Errorf("occupancy line %d: run %s ends without a start", n, l.Run)
			}
			delete(started, l.Run)
			closed = append(closed, Interval{Run: l.Run, Kind: s.Kind, Service: s.Service, Host: s.Host, Deployment: s.Deployment,
				PID: s.PID, Start: s.UnixNano, End: l.UnixNano})
		default:
			return nil, nil, fmt.Errorf("occupancy line %d: event %q is neither start nor end", n, l.Event)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	for _, run := range order {
		if l, ok := started[run]; ok {
			open = append(open, l)
		}
	}
	return closed, open, nil
}

// Overlaps finds every pair of intervals of different deployments on one node (service and host) that
// share an instant, ends included: a node given back at t and taken at t was held by two at t.
func Overlaps(intervals []Interval) []Overlap {
	byNode := map[[2]string][]Interval{}
	for _, iv := range intervals {
		k := [2]string{iv.Service, iv.Host}
		byNode[k] = append(byNode[k], iv)
	}
	keys := make([][2]string, 0, len(byNode))
	for k := range byNode {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+"/"+keys[i][1] < keys[j][0]+"/"+keys[j][1] })
	var out []Overlap
	for _, k := range keys {
		ivs := byNode[k]
		sort.Slice(ivs, func(i, j int) bool { return ivs[i].Start < ivs[j].Start })
		for i := range ivs {
			for j := i + 1; j < len(ivs) && ivs[j].Start <= ivs[i].End; j++ {
				if ivs[j].Deployment != ivs[i].Deployment {
					out = append(out, Overlap{Service: k[0], Host: k[1], First: ivs[i], Second: ivs[j]})
				}
			}
		}
	}
	return out
}

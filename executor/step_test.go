package executor

import (
	"encoding/json"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// On the API a step's duration is milliseconds (duration_ms) and its start RFC 3339; both are left out
// when unknown, so the steps of old records read as before.
func TestStepJSONCarriesMillisecondsAndOmitsWhatIsUnknown(t *testing.T) {
	st := Step{Name: "Unpack the release", Changed: true, Started: time.Date(2026, 12, 6, 3, 10, 0, 123e6, time.UTC), Duration: 412500 * time.Microsecond}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"name":"Unpack the release","changed":true,"started":"2026-12-06T03:10:00.123Z","duration_ms":412.5}`
	if string(data) != want {
		t.Errorf("JSON = %s\n want %s", data, want)
	}
	var back Step
	if err := json.Unmarshal(data, &back); err != nil || back != st {
		t.Errorf("read back %+v, %v; want %+v", back, err, st)
	}
	data, _ = json.Marshal(Step{Name: "old"})
	if string(data) != `{"name":"old"}` {
		t.Errorf("a step without timing = %s", data)
	}
	// Inside another value, as events carry it.
	data, _ = json.Marshal(struct {
		Step *Step `json:"step"`
	}{&st})
	if string(data) != `{"step":`+want+`}` {
		t.Errorf("nested = %s", data)
	}
}

// The store keeps steps in BSON: documents written before the timing existed still decode, and a step
// without timing adds no fields.
func TestStepBSONKeepsOldDocumentsReadable(t *testing.T) {
	old, err := bson.Marshal(bson.M{"name": "Take the node lock", "action": "nodeexec_lock", "failed": true, "message": "locked by x"})
	if err != nil {
		t.Fatal(err)
	}
	var st Step
	if err := bson.Unmarshal(old, &st); err != nil {
		t.Fatal(err)
	}
	if st != (Step{Name: "Take the node lock", Action: "nodeexec_lock", Failed: true, Message: "locked by x"}) {
		t.Errorf("old document = %+v", st)
	}
	data, _ := bson.Marshal(Step{Name: "x"})
	var fields bson.M
	_ = bson.Unmarshal(data, &fields)
	if _, ok := fields["started"]; ok {
		t.Errorf("a step without timing stores %v", fields)
	}
	timed := Step{Name: "x", Started: time.Date(2026, 12, 6, 3, 10, 0, 123e6, time.UTC), Duration: 412 * time.Millisecond}
	data, _ = bson.Marshal(timed)
	var back Step
	if err := bson.Unmarshal(data, &back); err != nil || !back.Started.Equal(timed.Started) || back.Duration != timed.Duration {
		t.Errorf("read back %+v, %v; want %+v", back, err, timed)
	}
}

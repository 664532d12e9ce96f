package status

import (
	"bufio"
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// TestStatusJSONNames pins the JSON names of the status document that
// `slided status -json`, the metrics and scripts read: every name in
// testdata/status-fields.txt must still be there. A new field passes (add
// it to the file); a renamed or removed one fails. SLIDED_UPDATE_GOLDEN=1
// rewrites the file after a deliberate change.
func TestStatusJSONNames(t *testing.T) {
	var st Snapshot
	fill(reflect.ValueOf(&st).Elem())
	b, err := json.Marshal(&st)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	paths("", doc, got)
	if os.Getenv("SLIDED_UPDATE_GOLDEN") != "" {
		var keys []string
		for k := range got {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if err := os.WriteFile("testdata/status-fields.txt", []byte(strings.Join(keys, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open("testdata/status-fields.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		if name := sc.Text(); !got[name] {
			t.Errorf("status JSON lacks %q", name)
		}
	}
	if n < 20 {
		t.Fatalf("testdata/status-fields.txt holds %d names", n)
	}
	t.Logf("%d names pinned, %d in the document", n, len(got))
}

// fill sets every field reachable from v to a non-zero value, so that
// omitempty hides none of them.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Array:
		for i := range v.Len() {
			fill(v.Index(i))
		}
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(1)
	}
}

// paths adds the dotted name of every member of the JSON document d;
// an array's elements are named by "[]".
func paths(prefix string, d any, out map[string]bool) {
	switch d := d.(type) {
	case map[string]any:
		for k, v := range d {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			out[p] = true
			paths(p, v, out)
		}
	case []any:
		for _, v := range d {
			paths(prefix+"[]", v, out)
		}
	}
}

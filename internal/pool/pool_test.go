package pool

import (
	"testing"
)

func TestBuildImage(t *testing.T) {
	dir := t.TempDir()
	img := buildImage(t, dir, "hello", []testLib{testApp("hello", "a_len(); b_sum(3);"), testLibA, testLibB})
	pd := t.TempDir()
	writeMap(t, pd, testLibA, testLibB)
	res, err := Add(pd, img, AddOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
}

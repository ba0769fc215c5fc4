package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestMapShowOfAMapFileThatIsNotThereIsAnErrorNamingIt(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-map.json")
	_, err := mapShowPath("", missing)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("map show --map %s: %v, want an error naming the file", missing, err)
	}
	if _, err := mapShowPath(t.TempDir(), missing); err == nil {
		t.Errorf("--pool and --map together were accepted")
	}
}

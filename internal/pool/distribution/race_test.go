package distribution

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"oras.land/oras-go/v2/registry/remote/errcode"
)

func TestRetryStorageRaceRetriesOnlyABlobUnknownAnswerAndAtMostFiveTimes(t *testing.T) {
	ctx := context.Background()
	unknown := &errcode.ErrorResponse{Method: http.MethodPut, StatusCode: 400,
		Errors: errcode.Errors{{Code: errcode.ErrorCodeManifestBlobUnknown}}}
	denied := &errcode.ErrorResponse{Method: http.MethodPut, StatusCode: 401,
		Errors: errcode.Errors{{Code: errcode.ErrorCodeUnauthorized}}}
	for _, c := range []struct {
		name  string
		errs  []error // what fn returns, try after try (the last repeats)
		tries int
		ok    bool
	}{
		{"race then success", []error{unknown, unknown, nil}, 3, true},
		{"race that does not end", []error{unknown}, 6, false},
		{"wrong password", []error{denied}, 1, false},
		{"not a registry answer", []error{errors.New("disk full")}, 1, false},
	} {
		tries := 0
		err := retryStorageRace(ctx, func() error {
			e := c.errs[min(tries, len(c.errs)-1)]
			tries++
			return e
		})
		if tries != c.tries || (err == nil) != c.ok {
			t.Errorf("%s: %d tries, err %v; want %d tries, success %v", c.name, tries, err, c.tries, c.ok)
		}
	}
}

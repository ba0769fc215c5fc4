package distribution

import (
	"context"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"

	"github.com/unipool/unipool/internal/libmap"
	"github.com/unipool/unipool/internal/pool"
)

// PullResult says what Pull did.
type PullResult struct {
	pool.PullStats
	Transfer Transfer `json:"transfer"`
}

// Pull brings the unikernels tagged names (every tag but the maps' if
// names is empty) from the repository into the pool at dir (creating it).
//
// It reads every manifest and description first and checks them as add
// does, and merges the registry's library map with the pool's: a library
// the two place differently is refused, by name, before any blob moves.
// Then it downloads only the blobs the pool lacks, several at a time, each
// verified against its digest as it streams into the staging folder
// (.pull). Last, under the pool's lock, it merges the map, moves the
// blobs into place and writes index.json once: the new unikernels appear
// together or not at all, and until then nothing of theirs is in the pool.
// A pull that is interrupted keeps what it verified in .pull and the next
// pull resumes from there. Pulls into one pool may run at once.
// (pool.PullFrom does all of that; this opens the registry.)
func Pull(ctx context.Context, dir, repo string, names []string, opt RemoteOptions) (*PullResult, error) {
	r, err := openRemote(repo, opt)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", repo, err)
	}
	st, err := pool.PullFrom(ctx, dir, repo, pullSource{r: r, repo: repo}, names, opt.jobs())
	if err != nil {
		return nil, err
	}
	return &PullResult{PullStats: *st, Transfer: r.transfer.snapshot()}, nil
}

// pullSource is a repository as pool.PullFrom reads it.
type pullSource struct {
	r    *remoteRepo
	repo string
}

var _ pool.Registry = pullSource{}

func (s pullSource) Tags(ctx context.Context) ([]string, error) {
	var tags []string
	err := s.r.Tags(ctx, "", func(t []string) error { tags = append(tags, t...); return nil })
	return tags, err
}

func (s pullSource) Maps(ctx context.Context, tags []string, local string) (*libmap.Map, error) {
	return fetchMaps(ctx, s.r, s.repo, tags, local)
}

func (s pullSource) FetchManifest(ctx context.Context, ref string) (ocispec.Descriptor, []byte, error) {
	return oras.FetchBytes(ctx, s.r, ref, oras.FetchBytesOptions{MaxBytes: pool.MaxMetaSize})
}

func (s pullSource) FetchBlob(ctx context.Context, d ocispec.Descriptor) ([]byte, error) {
	return content.FetchAll(ctx, s.r, d) // checks size and digest
}

func (s pullSource) GetBlob(ctx context.Context, d ocispec.Descriptor, off int64) (io.ReadCloser, bool, error) {
	return s.r.getBlob(ctx, d, off)
}

func (s pullSource) Explain(err error) error { return s.r.explain(err) }

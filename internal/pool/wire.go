package pool

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/unipool/unipool/internal/desc"
)

// How a unikernel travels through a registry (push writes it, pull reads
// it and also reads what earlier versions pushed: the pool's own manifest
// and description as they are).
//
// A description is ~30 KiB of JSON that compresses ~5x, and fetching it
// is a request of its own. So push sends a wire manifest: the pool's
// manifest with its config replaced by the gzip of the description
// (MediaTypeConfigGzip, a blob the registry keeps), embedded in the
// descriptor's data field, and annotated with the description's own
// digest. Pull takes the description from the pool when it holds that
// digest, else from the data field (or the blob), decompresses it,
// checks it hashes to the annotated digest, and puts the config back:
// the manifest it stores is byte for byte the pool's manifest at the
// source (push only sends the wire form when that round trip holds).
const (
	MediaTypeConfigGzip = desc.MediaTypeConfig + "+gzip"
	// AnnotationConfigDigest is the digest of the description itself.
	AnnotationConfigDigest = "org.unipool.config.digest"
)

// wireManifest returns the wire form of the pool manifest mData whose
// description is cData, and the compressed description (a blob the
// registry must hold); ok is false when the round trip would not give
// mData back (then the manifest travels as it is).
func wireManifest(mData, cData []byte) (wire, gz []byte, ok bool) {
	m, err := parseManifest(mData)
	if err != nil || digest.SHA256.FromBytes(cData) != m.Config.Digest {
		return nil, nil, false
	}
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	zw.Write(cData)
	if zw.Close() != nil {
		return nil, nil, false
	}
	gz = b.Bytes()
	w := *m
	w.Config = ocispec.Descriptor{
		MediaType:   MediaTypeConfigGzip,
		Digest:      digest.SHA256.FromBytes(gz),
		Size:        int64(len(gz)),
		Data:        gz,
		Annotations: map[string]string{AnnotationConfigDigest: string(m.Config.Digest)},
	}
	wire, err = json.Marshal(w)
	if err != nil {
		return nil, nil, false
	}
	_, wc, err := poolManifest(wire)
	if err != nil || wc == nil || wc.Digest != m.Config.Digest {
		return nil, nil, false
	}
	if back, err := withConfig(wire, wc, cData); err != nil || !bytes.Equal(back, mData) {
		return nil, nil, false
	}
	return wire, gz, true
}

// wireConfig is what a wire manifest says of its description.
type wireConfig struct {
	// Digest is the description's own digest (in the pool).
	Digest digest.Digest
	// Packed is the descriptor of its compressed form: Data holds it when
	// the manifest embeds it.
	Packed ocispec.Descriptor
}

// poolManifest turns a manifest read from a registry into the pool's form.
// A manifest in the pool's form (pushed by earlier versions) comes back as
// it is, with wc nil. For a wire manifest wc says where its description
// is; withConfig then gives the pool's form.
func poolManifest(data []byte) (out []byte, wc *wireConfig, err error) {
	var m ocispec.Manifest
	if err := DecodeStrict(data, &m); err != nil {
		return nil, nil, fmt.Errorf("not valid JSON: %w", err)
	}
	if m.Config.MediaType != MediaTypeConfigGzip {
		return data, nil, nil
	}
	orig := digest.Digest(m.Config.Annotations[AnnotationConfigDigest])
	if orig.Validate() != nil || orig.Algorithm() != digest.SHA256 {
		return nil, nil, fmt.Errorf("config: annotation %s %q is not a sha256 digest", AnnotationConfigDigest, orig)
	}
	if err := checkDescriptor(ocispec.Descriptor{MediaType: m.Config.MediaType, Digest: m.Config.Digest, Size: m.Config.Size}); err != nil {
		return nil, nil, fmt.Errorf("config: %w", err)
	}
	return nil, &wireConfig{Digest: orig, Packed: m.Config}, nil
}

// withConfig is the pool's form of the wire manifest data, its config the
// description cData (already checked to hash to wc.Digest).
func withConfig(data []byte, wc *wireConfig, cData []byte) ([]byte, error) {
	var m ocispec.Manifest
	if err := DecodeStrict(data, &m); err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	m.Config = ocispec.Descriptor{MediaType: desc.MediaTypeConfig, Digest: wc.Digest, Size: int64(len(cData))}
	return json.Marshal(m)
}

// unpackConfig decompresses a description (at most maxMetaSize bytes) and
// checks it hashes to want.
func unpackConfig(gz []byte, want digest.Digest) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("compressed description: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(zr, maxMetaSize+1))
	if err != nil {
		return nil, fmt.Errorf("compressed description: %w", err)
	}
	if len(data) > maxMetaSize {
		return nil, errors.New("compressed description: more than a description may have")
	}
	if got := digest.SHA256.FromBytes(data); got != want {
		return nil, fmt.Errorf("compressed description: it unpacks to %s, not to %s (the registry's copy is damaged or tampered with)", got, want)
	}
	return data, nil
}

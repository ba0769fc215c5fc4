package pool

import (
	"errors"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// What package pool/distribution needs of the pool to push it: the pool
// held still, its index, and each unikernel's manifest and description as
// they verify. (Pull's side is PullFrom and Registry, remote.go.)

// LockShared takes the pool's lock shared, as a push holds it: nothing
// adds, removes or collects while it is held; readers and other pushes go
// on. unlock releases it.
func (p *Pool) LockShared() (unlock func(), err error) {
	l, err := p.lock(false)
	if err != nil {
		return nil, err
	}
	return l.unlock, nil
}

// Index reads index.json: the pool's unikernels, each named by its
// ocispec.AnnotationRefName.
func (p *Pool) Index() (*ocispec.Index, error) { return p.readIndex() }

// ReadVerified reads the unikernel whose manifest is md and its
// description, checks that they agree, and returns both as the pool stores
// them, each checked against its digest: a registry must not receive a
// damaged blob under a digest it does not match.
func (p *Pool) ReadVerified(md ocispec.Descriptor) (mData, cData []byte, err error) {
	m, _, err := p.loadDescription(md)
	if err != nil {
		return nil, nil, err
	}
	mData, err1 := p.readBlob(md)
	cData, err2 := p.readBlob(m.Config)
	if err := errors.Join(err1, err2); err != nil {
		return nil, nil, err
	}
	return mData, cData, nil
}

// WireManifest is the wire form of the pool manifest mData whose
// description is cData (wire.go), and the compressed description; ok is
// false when the manifest must travel as it is.
func WireManifest(mData, cData []byte) (wire, gz []byte, ok bool) { return wireManifest(mData, cData) }

// ReadMatching reads the file at path whole if it has d's size and digest,
// else returns nil.
func ReadMatching(path string, d ocispec.Descriptor) []byte { return readMatching(path, d) }

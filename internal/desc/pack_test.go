package desc

import "testing"

func packConfig() *Config {
	return &Config{SchemaVersion: SchemaVersionPack, Layout: "aligned", Libraries: []Library{
		{Name: "m", Region: Region{Start: 0x40001040, SharedSize: 0x200, PrivateStart: 0x70000010, PrivateSize: 0x20}, Shared: Shared{Size: 0x200}, Pack: 0x40000000},
		{Name: PackPageName(0x40001000), Region: Region{Start: 0x40001000, SharedSize: 0x1000}, Shared: Shared{Size: 0x1000, Segments: []Segment{{Off: 0, Size: 0x1000, Prot: ProtRX}}},
			Pack: 0x40000000, PackPage: true},
	}}
}

// A pack member is 16-byte aligned code with no blob of its own, lying on
// pack pages of its pack moved as it is; a pack page entry is whole pages
// of code (one, or a whole pack of at most MaxPackSize) and nothing else;
// both need a description that says it has packs.
func TestValidateChecksPackMembersAndPackPages(t *testing.T) {
	if err := packConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	moved := packConfig()
	for i := range moved.Libraries {
		l := &moved.Libraries[i]
		l.Shift = 0x3000
		l.Region.Start += 0x3000
		if l.Region.Dense() {
			l.Region.PrivateStart += 0x3000
		}
	}
	if err := moved.Validate(); err != nil {
		t.Fatalf("a pack moved as one by whole pages: %v", err)
	}
	for name, spoil := range map[string]func(c *Config){
		"schema":       func(c *Config) { c.SchemaVersion = SchemaVersionDense },
		"segments":     func(c *Config) { c.Libraries[0].Shared.Segments = []Segment{{Off: 0, Size: 0x1000, Prot: ProtRX}} },
		"blob":         func(c *Config) { c.Libraries[0].Shared.Digest = "sha256:00" },
		"unaligned":    func(c *Config) { c.Libraries[0].Region.Start += 8 },
		"no page":      func(c *Config) { c.Libraries = c.Libraries[:1] },
		"other pack":   func(c *Config) { c.Libraries[1].Pack += 0x1000 },
		"moved apart":  func(c *Config) { c.Libraries[1].Shift = 0x1000 },
		"page private": func(c *Config) { c.Libraries[1].Region.PrivateSize = 0x1000 },
		"page sizes":   func(c *Config) { c.Libraries[1].Region.SharedSize = 0x2000 },
		"page too large": func(c *Config) {
			c.Libraries[1].Region.SharedSize = MaxPackSize + 0x1000
			c.Libraries[1].Shared.Size = MaxPackSize + 0x1000
		},
		"page partial": func(c *Config) { c.Libraries[1].Region.SharedSize = 0x1800; c.Libraries[1].Shared.Size = 0x1800 },
		"not dense":    func(c *Config) { c.Libraries[0].Region.PrivateStart = 0 },
		"past its room": func(c *Config) {
			// Member and page a pack's room past the pack's start.
			c.Libraries[0].Region.Start += MaxPackSize
			c.Libraries[1].Region.Start += MaxPackSize
		},
		"member too large": func(c *Config) {
			// A member over more pages than a pack has, each page an entry.
			c.Libraries[0].Region.SharedSize, c.Libraries[0].Shared.Size = MaxPackSize+0x1000, MaxPackSize+0x1000
			for pg := uint64(0x40002000); pg < 0x40001040+MaxPackSize+0x1000; pg += 0x1000 {
				e := c.Libraries[1]
				e.Name, e.Region.Start = PackPageName(pg), pg
				c.Libraries = append(c.Libraries, e)
			}
		},
		"before pack": func(c *Config) { c.Libraries[0].Pack = 0x40002000; c.Libraries[1].Pack = 0x40002000 },
	} {
		c := packConfig()
		spoil(c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: a bad pack validated", name)
		}
	}
}

// A pooled description maps a whole pack with one entry (the pool's
// wholePacks): members on any of its pages lie in it; a member past its
// end lies on no page of its pack.
func TestValidateTakesAWholePackAsOneEntry(t *testing.T) {
	c := packConfig()
	pg := &c.Libraries[1]
	pg.Name, pg.Region.Start = PackPageName(0x40000000), 0x40000000
	pg.Region.SharedSize, pg.Shared.Size, pg.Shared.Segments[0].Size = 0x3000, 0x3000, 0x3000
	c.Libraries = append(c.Libraries, Library{Name: "n", Region: Region{Start: 0x40002f00, SharedSize: 0x100, PrivateStart: 0x70000030, PrivateSize: 0x10},
		Shared: Shared{Size: 0x100}, Pack: 0x40000000})
	if err := c.Validate(); err != nil {
		t.Fatalf("two members in one whole pack entry: %v", err)
	}
	c.Libraries[2].Region.Start = 0x40003000
	if err := c.Validate(); err == nil {
		t.Fatal("a member past its whole pack's entry validated")
	}
}

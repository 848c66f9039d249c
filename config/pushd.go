package config

// Pushd is pushd's section of the farm file ("pushd:"). Owned by pushd: add
// fields with yaml tags (zero means default), and check them in validate.
type Pushd struct{}

// validate checks the section and fills its defaults; path is its key
// ("pushd"). Return a *KeyError (keyErr) naming the key.
func (p *Pushd) validate(f *Farm, path string) error { return nil }

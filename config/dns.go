package config

// DNS is dnsd's section of the farm file ("dns:"). Owned by dnsd: add fields
// with yaml tags (zero means default), and check them in validate.
type DNS struct{}

// validate checks the section and fills its defaults; path is its key
// ("dns"). Return a *KeyError (keyErr) naming the key.
func (d *DNS) validate(f *Farm, path string) error { return nil }

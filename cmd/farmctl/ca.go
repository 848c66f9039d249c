package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/farmlb/farmlb/peerlink"
	"github.com/urfave/cli/v2"
)

func caCommand() *cli.Command {
	validity := &cli.DurationFlag{Name: "valid", Usage: "how long the certificate is valid (default: 10 years for the CA, 2 years for a member)", EnvVars: []string{"FARMLB_CA_VALID"}}
	force := &cli.BoolFlag{Name: "force", Usage: "overwrite existing files", EnvVars: []string{"FARMLB_CA_FORCE"}}
	return &cli.Command{
		Name:      "ca",
		Usage:     "create the farm's CA and its members' certificates for the mesh",
		UsageText: "farmctl ca init DIR | farmctl ca issue DIR NAME",
		Description: `The members of a farm (every pushd node and dnsd observer) prove who they
are to each other with certificates signed by the farm's own CA (ECDSA P-256).
A member's certificate carries its name (subject CN and DNS SAN), which must be
a member name in the farm file.

  farmctl ca init DIR          creates DIR/ca.crt and DIR/ca.key
  farmctl ca issue DIR NAME    creates DIR/NAME.crt and DIR/NAME.key, signed by DIR's CA

Keys are written with mode 0600. Existing files are kept unless --force.
Point the farm file's tls.ca at DIR/ca.crt and tls.cert/tls.key at
DIR/{name}.crt and DIR/{name}.key.`,
		Subcommands: []*cli.Command{
			{
				Name:      "init",
				Usage:     "create a new farm CA in DIR",
				ArgsUsage: "DIR",
				Flags:     []cli.Flag{validity, force, &cli.StringFlag{Name: "farm", Usage: "farm `NAME` written into the CA's subject", Value: "farm", EnvVars: []string{"FARMLB_CA_FARM"}}},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return cli.Exit("usage: farmctl ca init DIR", 2)
					}
					dir := c.Args().Get(0)
					crt, key, err := peerlink.NewCA(c.String("farm"), c.Duration("valid"))
					if err != nil {
						return err
					}
					if err := writePair(dir, "ca", crt, key, c.Bool("force")); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "created %s and %s\n", filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
					return nil
				},
			},
			{
				Name:      "issue",
				Usage:     "create a member's certificate and key, signed by the CA in DIR",
				ArgsUsage: "DIR NAME",
				Flags:     []cli.Flag{validity, force},
				Action: func(c *cli.Context) error {
					if c.NArg() != 2 {
						return cli.Exit("usage: farmctl ca issue DIR NAME", 2)
					}
					dir, name := c.Args().Get(0), c.Args().Get(1)
					if name == "ca" {
						return cli.Exit(`"ca" is the CA's own file name, not a member name`, 2)
					}
					caCrt, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
					if err != nil {
						return fmt.Errorf("read the CA (run farmctl ca init %s first?): %w", dir, err)
					}
					caKey, err := os.ReadFile(filepath.Join(dir, "ca.key"))
					if err != nil {
						return fmt.Errorf("read the CA key: %w", err)
					}
					crt, key, err := peerlink.IssueCert(caCrt, caKey, name, c.Duration("valid"))
					if err != nil {
						return cli.Exit(err.Error(), 2)
					}
					if err := writePair(dir, name, crt, key, c.Bool("force")); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "created %s and %s\n", filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"))
					return nil
				},
			},
		},
	}
}

// writePair writes DIR/BASE.crt (0644) and DIR/BASE.key (0600), refusing to
// overwrite either unless force.
func writePair(dir, base string, crt, key []byte, force bool) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode fs.FileMode
	}{
		{filepath.Join(dir, base+".key"), key, 0o600},
		{filepath.Join(dir, base+".crt"), crt, 0o644},
	}
	if !force {
		for _, f := range files {
			if _, err := os.Stat(f.name); err == nil {
				return fmt.Errorf("%s exists (use --force to replace it)", f.name)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	for _, f := range files {
		if err := writeFileAtomic(f.name, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func writeFileAtomic(name string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".tmp-"+filepath.Base(name)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// Command mkimage assembles the farmlb appliance (run by `make image`):
//
//	mkimage initramfs --init bin/farmlb-init --bin bin/pushd --bin bin/dnsd -o build/initrd.gz
//	mkimage disk --kernel vmlinuz --initrd build/initrd.gz --config DIR -o build/appliance.img
//
// Both write the same bytes for the same inputs (time stamps come from
// SOURCE_DATE_EPOCH, or the last commit).
package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/farmlb/farmlb/appliance"
	"github.com/farmlb/farmlb/appliance/image"
	"github.com/farmlb/farmlb/config"
	"github.com/farmlb/farmlb/internal/cliutil"
	"github.com/urfave/cli/v2"
)

func main() { cliutil.Main(newApp(os.Stdout, os.Stderr)) }

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "mkimage",
		Usage:     "assemble the farmlb appliance: an initramfs and a bootable disk image",
		Writer:    stdout,
		ErrWriter: stderr,
		Commands: []*cli.Command{
			{
				Name:  "initramfs",
				Usage: "write a gzip'd cpio initramfs with the init as /init and the daemons in /bin",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "init", Usage: "the farmlb-init binary (static; required)", EnvVars: []string{"FARMLB_IMAGE_INIT"}},
					&cli.StringSliceFlag{Name: "bin", Usage: "a static binary for /bin (repeat); missing files are an error", EnvVars: []string{"FARMLB_IMAGE_BINS"}},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "where to write the initramfs (required)", EnvVars: []string{"FARMLB_IMAGE_INITRD"}},
				},
				Action: func(c *cli.Context) error {
					if err := cliutil.Required(c, "init", "output"); err != nil {
						return err
					}
					if err := cliutil.NoArgs(c); err != nil {
						return err
					}
					var buf bytes.Buffer
					start := time.Now()
					err := image.BuildInitramfs(&buf, image.InitramfsConfig{
						Init:  c.String("init"),
						Bins:  c.StringSlice("bin"),
						Epoch: image.Epoch(c.Context),
					})
					if err != nil {
						return err
					}
					if err := writeFile(c.String("output"), buf.Bytes()); err != nil {
						return err
					}
					fmt.Fprintf(c.App.ErrWriter, "initramfs: %s, %.1f MiB, in %v\n", c.String("output"), float64(buf.Len())/(1<<20), time.Since(start).Round(time.Millisecond))
					return nil
				},
			},
			{
				Name:  "disk",
				Usage: "write a GPT disk image that boots by BIOS and UEFI, with the config in /farmlb/ on its FAT partition",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "kernel", Usage: "the kernel (bzImage with EFI stub; required)", EnvVars: []string{"FARMLB_IMAGE_KERNEL"}},
					&cli.StringFlag{Name: "initrd", Usage: "the initramfs (required)", EnvVars: []string{"FARMLB_IMAGE_INITRD"}},
					&cli.StringFlag{Name: "config", Usage: "folder with appliance.yaml, farm.yaml and certificates, copied to /farmlb/ (required)", EnvVars: []string{"FARMLB_IMAGE_CONFIG"}},
					&cli.StringFlag{Name: "cmdline", Usage: "kernel command line", Value: image.DefaultCmdline, EnvVars: []string{"FARMLB_IMAGE_CMDLINE"}},
					&cli.IntFlag{Name: "size", Usage: fmt.Sprintf("FAT partition size in MiB, %d to %d (FAT32's bounds)", image.MinPartMiB, image.MaxPartMiB), Value: 128, EnvVars: []string{"FARMLB_IMAGE_SIZE"}},
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "where to write the image (required)", EnvVars: []string{"FARMLB_IMAGE_OUT"}},
				},
				Action: func(c *cli.Context) error {
					if err := cliutil.Required(c, "kernel", "initrd", "config", "output"); err != nil {
						return err
					}
					if err := cliutil.NoArgs(c); err != nil {
						return err
					}
					// Zero is not the default here, as it is for
					// DiskConfig: the flag's default is shown in --help.
					if n := c.Int("size"); n < image.MinPartMiB || n > image.MaxPartMiB {
						return cliutil.Usage("--size %d: want %d to %d MiB (FAT32's bounds)", n, image.MinPartMiB, image.MaxPartMiB)
					}
					// Refuse a config the init would refuse, before the image
					// is written rather than at boot.
					if err := checkConfig(c.String("config")); err != nil {
						return cliutil.Usage("%v", err)
					}
					start := time.Now()
					err := image.BuildDisk(c.Context, image.DiskConfig{
						Out:       c.String("output"),
						Kernel:    c.String("kernel"),
						Initrd:    c.String("initrd"),
						ConfigDir: c.String("config"),
						Cmdline:   c.String("cmdline"),
						PartMiB:   c.Int("size"),
						Epoch:     image.Epoch(c.Context),
						Progress:  c.App.ErrWriter,
					})
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.ErrWriter, "disk: %s in %v\n", c.String("output"), time.Since(start).Round(time.Millisecond))
					return nil
				},
			},
		},
		// Errors are printed by main.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	cliutil.SetUsageErrors(app)
	return app
}

// checkConfig loads appliance.yaml and its farm.yaml as the box will, and
// checks that the services' names are members of the farm.
func checkConfig(dir string) error {
	a, err := appliance.Load(filepath.Join(dir, "appliance.yaml"))
	if err != nil {
		return err
	}
	f, err := config.Load(a.FarmPath())
	if err != nil {
		return err
	}
	if p := a.Services.Pushd; p != nil {
		if _, ok := f.Node(p.Node); !ok {
			return fmt.Errorf("services.pushd.node: %q is not a node of %s", p.Node, a.FarmPath())
		}
	}
	if d := a.Services.Dnsd; d != nil {
		if _, ok := f.Observer(d.Name); !ok {
			return fmt.Errorf("services.dnsd.name: %q is not an observer of %s", d.Name, a.FarmPath())
		}
	}
	return nil
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

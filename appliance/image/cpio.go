// Package image assembles the appliance: an initramfs (cpio "newc" plus
// gzip, written here, byte for byte reproducible) holding the init and the
// daemons, and a GPT disk image with one FAT partition that boots by BIOS
// (syslinux) and by UEFI (systemd-boot) and holds the appliance's config.
package image

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Entry is one file of an initramfs.
type Entry struct {
	// Path inside the archive, without a leading slash ("bin/pushd").
	Path string
	// Mode holds the type bits (fs.ModeDir, fs.ModeSymlink,
	// fs.ModeCharDevice|fs.ModeDevice) and the permissions.
	Mode fs.FileMode
	// Data is a regular file's content.
	Data []byte
	// Target is a symlink's target.
	Target string
	// Major and Minor are a device node's numbers.
	Major, Minor uint32
}

// Archive is an initramfs being put together; parents of every entry are
// added as directories (0755) when written.
type Archive struct {
	entries map[string]Entry
}

// NewArchive returns an empty archive.
func NewArchive() *Archive { return &Archive{entries: map[string]Entry{}} }

// Add puts e in the archive, replacing an entry of the same path.
func (a *Archive) Add(e Entry) error {
	p := path.Clean(strings.TrimPrefix(e.Path, "/"))
	if p == "." || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("initramfs: bad path %q", e.Path)
	}
	e.Path = p
	a.entries[p] = e
	return nil
}

// WriteCPIO writes the archive in the kernel's "newc" cpio format: entries
// sorted by path (parents first), every time stamp mtime, owner root,
// inode numbers counted from 1, so that the same files give the same
// bytes.
func (a *Archive) WriteCPIO(w io.Writer, mtime int64) error {
	all := map[string]Entry{}
	for p, e := range a.entries {
		all[p] = e
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if _, ok := a.entries[d]; !ok {
				all[d] = Entry{Path: d, Mode: fs.ModeDir | 0o755}
			}
		}
	}
	paths := make([]string, 0, len(all))
	for p := range all {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	cw := &countWriter{w: w}
	for i, p := range paths {
		if err := writeEntry(cw, all[p], uint32(i+1), mtime); err != nil {
			return err
		}
	}
	if err := writeHeaderDev(cw, "TRAILER!!!", 0, 0, 1, 0, 0, 0, 0); err != nil {
		return err
	}
	// The kernel reads the archive in 512-byte blocks; pad as cpio(1) does.
	return pad(cw, 512)
}

// WriteInitramfs writes the archive gzip-compressed, with no name or time
// in the gzip header. The default level: on Go binaries the best level
// saves under 1% and takes five times as long.
func (a *Archive) WriteInitramfs(w io.Writer, mtime int64) error {
	zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
	if err != nil {
		return err
	}
	if err := a.WriteCPIO(zw, mtime); err != nil {
		return err
	}
	return zw.Close()
}

const (
	cpioDir  = 0o040000
	cpioReg  = 0o100000
	cpioLink = 0o120000
	cpioChr  = 0o020000
)

func writeEntry(w *countWriter, e Entry, ino uint32, mtime int64) error {
	perm := uint32(e.Mode.Perm())
	var body []byte
	var mode uint32
	switch {
	case e.Mode.IsDir():
		mode = cpioDir | perm
	case e.Mode&fs.ModeSymlink != 0:
		mode, body = cpioLink|0o777, []byte(e.Target)
	case e.Mode&fs.ModeCharDevice != 0:
		mode = cpioChr | perm
	case e.Mode.IsRegular():
		mode, body = cpioReg|perm, e.Data
	default:
		return fmt.Errorf("initramfs: %s: unsupported mode %v", e.Path, e.Mode)
	}
	nlink := uint32(1)
	if e.Mode.IsDir() {
		nlink = 2
	}
	if err := writeHeaderDev(w, e.Path, ino, mode, nlink, mtime, uint32(len(body)), e.Major, e.Minor); err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	return pad(w, 4)
}

func writeHeaderDev(w *countWriter, name string, ino, mode, nlink uint32, mtime int64, size, rmajor, rminor uint32) error {
	if mtime < 0 || mtime > 0xffffffff {
		return errors.New("initramfs: mtime out of range")
	}
	// magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
	// devminor, rdevmajor, rdevminor, namesize, check.
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, uint32(mtime), size, 0, 0, rmajor, rminor, len(name)+1, 0)
	if _, err := io.WriteString(w, hdr); err != nil {
		return err
	}
	if _, err := io.WriteString(w, name+"\x00"); err != nil {
		return err
	}
	return pad(w, 4)
}

func pad(w *countWriter, to int64) error {
	if r := w.n % to; r != 0 {
		_, err := w.Write(make([]byte, to-r))
		return err
	}
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// lazyfs: a FUSE file system for power-cut tests. It mounts MOUNTPOINT as a view of
// BACKING in which file data written but not yet fsynced lives only in this process's
// memory. Killing the process (SIGKILL) and detaching the mount is a power cut: the
// backing directory then holds exactly what was fsynced. See README.md.
//
//	lazyfs [-max-unflushed-mib N] [-debug] BACKING MOUNTPOINT   mount; prints "mounted" when ready
//	lazyfs -unmount MOUNTPOINT                                  detach a mount (MNT_DETACH), dead or alive
//	lazyfs -probe                                               exit 0 when this machine can mount it
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

func main() {
	maxUnflushedMiB := flag.Int64("max-unflushed-mib", 2048, "memory for unflushed data; a write past it fails with ENOSPC")
	debug := flag.Bool("debug", false, "log every FUSE request")
	unmount := flag.Bool("unmount", false, "detach the mount at the one argument and exit")
	probe := flag.Bool("probe", false, "mount a temporary directory, check it, unmount it and exit")
	flag.Parse()
	var err error
	switch {
	case *unmount && flag.NArg() == 1:
		err = unix.Unmount(flag.Arg(0), unix.MNT_DETACH)
	case *probe && flag.NArg() == 0:
		err = runProbe()
	case !*unmount && !*probe && flag.NArg() == 2:
		err = serve(flag.Arg(0), flag.Arg(1), *maxUnflushedMiB<<20, *debug)
	default:
		fmt.Fprintln(os.Stderr, "usage: lazyfs [-max-unflushed-mib N] [-debug] BACKING MOUNTPOINT | lazyfs -unmount MOUNTPOINT | lazyfs -probe")
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lazyfs: %v\n", err)
		os.Exit(1)
	}
}

// mount mounts the lazy view of backing at mountpoint.
func mount(backing, mountpoint string, heldMax int64, debug bool) (*fuse.Server, error) {
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("backing directory: %w", err)
	}
	root := &fs.LoopbackRoot{Path: backing, Dev: st.Dev}
	node := &lazyNode{LoopbackNode: &fs.LoopbackNode{RootData: root}, lfs: newLazyFS(heldMax)}
	root.RootNode = node
	second := time.Second
	return fs.Mount(mountpoint, node, &fs.Options{
		EntryTimeout: &second,
		AttrTimeout:  &second,
		MountOptions: fuse.MountOptions{
			// No fusermount needed: we mount with mount(2) as root.
			DirectMount: true,
			FsName:      backing,
			Name:        "lazyfs",
			// Without xattrs the kernel stops asking for security.capability on every write.
			DisableXAttrs: true,
			// Passthrough would send reads and writes straight to the backing file.
			DisabledCapabilities: fuse.CAP_PASSTHROUGH,
			Debug:                debug,
		},
	})
}

// serve mounts and serves until SIGTERM or SIGINT (unmount, unflushed data dropped) or SIGKILL (the power cut).
func serve(backing, mountpoint string, heldMax int64, debug bool) error {
	server, err := mount(backing, mountpoint, heldMax, debug)
	if err != nil {
		return err
	}
	fmt.Printf("mounted %s on %s\n", backing, mountpoint)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		if err := server.Unmount(); err != nil {
			fmt.Fprintf(os.Stderr, "lazyfs: unmount: %v; detaching\n", err)
			_ = unix.Unmount(mountpoint, unix.MNT_DETACH)
		}
	}()
	server.Wait()
	return nil
}

// runProbe mounts a temporary directory, writes a file through it without fsync and
// checks that the mount shows it while the backing file stays empty.
func runProbe() error {
	tmp, err := os.MkdirTemp("", "lazyfs-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	backing, mnt := filepath.Join(tmp, "backing"), filepath.Join(tmp, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	server, err := mount(backing, mnt, 1<<20, false)
	if err != nil {
		return fmt.Errorf("mount refused: %w", err)
	}
	defer server.Unmount()
	want := []byte("unflushed")
	if err := os.WriteFile(filepath.Join(mnt, "f"), want, 0o644); err != nil {
		return err
	}
	got, err := os.ReadFile(filepath.Join(mnt, "f"))
	if err != nil || !bytes.Equal(got, want) {
		return errors.Join(fmt.Errorf("read through the mount gave %q, want %q", got, want), err)
	}
	if st, err := os.Stat(filepath.Join(backing, "f")); err != nil || st.Size() != 0 {
		return errors.Join(errors.New("the backing file should exist and be empty before an fsync"), err)
	}
	return nil
}

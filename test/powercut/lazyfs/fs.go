// The FUSE layer: a loopback file system (go-fuse's LoopbackNode) whose regular files
// read and write through an overlay per file, flushed to the backing file only by
// fsync/fdatasync of that file (or by a write through a handle opened O_SYNC/O_DSYNC).
// Namespace operations (create, mkdir, rename, unlink, link, symlink, chmod) pass
// through to the backing directory at once.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// lazyFS holds the overlays of the files with unflushed changes, by backing inode
// number (so hard links share one), under one lock. The backing I/O done under the
// lock is page-cache I/O: the backing directory is never fsynced, it stands for the
// disk and survives a power cut of the mount by construction.
type lazyFS struct {
	mu    sync.Mutex
	files map[uint64]*fileState
	// held is the memory all overlays hold; a write that would pass heldMax fails with ENOSPC.
	held    int64
	heldMax int64
}

type fileState struct {
	ov   *overlay // nil while the file has no unflushed change
	open int      // handles open on the file
}

func newLazyFS(heldMax int64) *lazyFS {
	return &lazyFS{files: map[uint64]*fileState{}, heldMax: heldMax}
}

// state returns the file's state, creating it; the caller holds mu.
func (l *lazyFS) state(ino uint64) *fileState {
	s := l.files[ino]
	if s == nil {
		s = &fileState{}
		l.files[ino] = s
	}
	return s
}

// discard drops the file's unflushed changes (it can no longer be reached); the caller holds mu.
func (l *lazyFS) discard(ino uint64) {
	if s := l.files[ino]; s != nil && s.ov != nil {
		l.held -= s.ov.heldBytes()
		s.ov = nil
	}
	l.tidy(ino)
}

// tidy forgets a file with nothing unflushed and no open handle; the caller holds mu.
func (l *lazyFS) tidy(ino uint64) {
	if s := l.files[ino]; s != nil && s.ov == nil && s.open == 0 {
		delete(l.files, ino)
	}
}

// discardIfClosed discards the changes of a file whose last name is gone, unless a
// handle still reads it (then its Release does).
func (l *lazyFS) discardIfClosed(ino uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.files[ino]; s != nil && s.open == 0 {
		l.discard(ino)
	}
}

// patch sets the size the overlay gives a file; the caller does not hold mu.
func (l *lazyFS) patch(ino uint64, size *uint64, blocks *uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.files[ino]; s != nil && s.ov != nil {
		*size = uint64(s.ov.size)
		*blocks = (*size + 511) / 512
	}
}

// truncate sets a file's size in its overlay; backingSize is the backing file's size.
func (l *lazyFS) truncate(ino uint64, backingSize int64, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.state(ino)
	if s.ov == nil {
		s.ov = newOverlay(backingSize)
	}
	before := s.ov.heldBytes()
	s.ov.truncate(size)
	l.held += s.ov.heldBytes() - before
}

// lazyNode is a file or directory of the mount.
type lazyNode struct {
	*fs.LoopbackNode
	lfs *lazyFS
}

var (
	_ fs.NodeWrapChilder = (*lazyNode)(nil)
	_ fs.NodeLookuper    = (*lazyNode)(nil)
	_ fs.NodeLinker      = (*lazyNode)(nil)
	_ fs.NodeOpener      = (*lazyNode)(nil)
	_ fs.NodeCreater     = (*lazyNode)(nil)
	_ fs.NodeGetattrer   = (*lazyNode)(nil)
	_ fs.NodeStatxer     = (*lazyNode)(nil)
	_ fs.NodeSetattrer   = (*lazyNode)(nil)
	_ fs.NodeUnlinker    = (*lazyNode)(nil)
	_ fs.NodeRenamer     = (*lazyNode)(nil)
	_ fs.NodeTmpfiler    = (*lazyNode)(nil)
)

// WrapChild makes every node the loopback creates (lookup, mkdir, create, …) a lazyNode.
func (n *lazyNode) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &lazyNode{LoopbackNode: ops.(*fs.LoopbackNode), lfs: n.lfs}
}

func (n *lazyNode) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

// openFlags are the flags of the backing file's descriptor, opened with access:
// never appending (the kernel gives every write its offset), truncating or syncing
// (the overlay does those).
func openFlags(flags uint32, access int) int {
	return int(flags)&^(syscall.O_ACCMODE|syscall.O_APPEND|syscall.O_TRUNC|syscall.O_SYNC|syscall.O_DSYNC|syscall.O_DIRECT|fuse.FMODE_EXEC) | access
}

// Open opens the backing file read-write when it can (a page being dirtied is read
// first, and a flush writes), read-only for a reader when it cannot.
func (n *lazyNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	path := n.backingPath()
	file, err := os.OpenFile(path, openFlags(flags, syscall.O_RDWR), 0)
	if err != nil && flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		file, err = os.OpenFile(path, openFlags(flags, syscall.O_RDONLY), 0)
	}
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	f, errno := n.lfs.newFile(file, flags, false)
	if errno != 0 {
		return nil, 0, errno
	}
	if flags&syscall.O_TRUNC != 0 {
		n.lfs.truncate(f.ino, 0, 0)
	}
	return f, 0, 0
}

// Create makes the backing file, then looks it up as a lookup would (so the inode has
// the same identity a later lookup gives it).
func (n *lazyNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	path := filepath.Join(n.backingPath(), name)
	file, err := os.OpenFile(path, openFlags(flags, syscall.O_RDWR)|syscall.O_CREAT|syscall.O_EXCL, os.FileMode(mode&0o777))
	created := err == nil
	if errors.Is(err, os.ErrExist) && flags&syscall.O_EXCL == 0 {
		file, err = os.OpenFile(path, openFlags(flags, syscall.O_RDWR)|syscall.O_CREAT, os.FileMode(mode&0o777))
	}
	if err != nil {
		return nil, nil, 0, fs.ToErrno(err)
	}
	inode, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno != 0 {
		file.Close()
		return nil, nil, 0, errno
	}
	f, errno := n.lfs.newFile(file, flags, created)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if flags&syscall.O_TRUNC != 0 && !created {
		n.lfs.truncate(f.ino, 0, 0)
	}
	n.lfs.patch(f.ino, &out.Attr.Size, &out.Attr.Blocks)
	return inode, f, 0, 0
}

// Tmpfile is refused: the loopback's would hand out a plain descriptor that bypasses
// the overlay, and nothing tested here needs O_TMPFILE.
func (n *lazyNode) Tmpfile(ctx context.Context, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// Lookup and Link answer with the file's attributes: the size must be the overlay's,
// or the kernel would clamp reads of unflushed data to the backing file's size.
func (n *lazyNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	child, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno == 0 {
		n.lfs.patch(out.Attr.Ino, &out.Attr.Size, &out.Attr.Blocks)
	}
	return child, errno
}

func (n *lazyNode) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	child, errno := n.LoopbackNode.Link(ctx, target, name, out)
	if errno == 0 {
		n.lfs.patch(out.Attr.Ino, &out.Attr.Size, &out.Attr.Blocks)
	}
	return child, errno
}

func (n *lazyNode) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	var err error
	if lf, ok := f.(*lazyFile); ok {
		err = syscall.Fstat(lf.fd(), &st)
	} else if n.EmbeddedInode() == n.Root() {
		err = syscall.Stat(n.backingPath(), &st)
	} else {
		err = syscall.Lstat(n.backingPath(), &st)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	n.lfs.patch(st.Ino, &out.Size, &out.Blocks)
	return fs.OK
}

func (n *lazyNode) Statx(ctx context.Context, f fs.FileHandle, flags uint32, mask uint32, out *fuse.StatxOut) syscall.Errno {
	var st unix.Statx_t
	var err error
	if lf, ok := f.(*lazyFile); ok {
		err = unix.Statx(lf.fd(), "", unix.AT_EMPTY_PATH, int(mask), &st)
	} else {
		err = unix.Statx(unix.AT_FDCWD, n.backingPath(), int(flags)|unix.AT_SYMLINK_NOFOLLOW, int(mask), &st)
	}
	if err != nil {
		return fs.ToErrno(err)
	}
	out.FromStatx(&st)
	n.lfs.patch(st.Ino, &out.Size, &out.Blocks)
	return fs.OK
}

// Setattr applies a size change to the overlay and passes the rest (mode, owner, times) through.
func (n *lazyNode) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		var st syscall.Stat_t
		var err error
		if lf, ok := f.(*lazyFile); ok {
			err = syscall.Fstat(lf.fd(), &st)
		} else {
			err = syscall.Lstat(n.backingPath(), &st)
		}
		if err != nil {
			return fs.ToErrno(err)
		}
		if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
			return syscall.EINVAL
		}
		n.lfs.truncate(st.Ino, st.Size, int64(size))
	}
	_, mode := in.GetMode()
	_, uid := in.GetUID()
	_, gid := in.GetGID()
	_, atime := in.GetATime()
	_, mtime := in.GetMTime()
	if mode || uid || gid || atime || mtime {
		rest := *in
		rest.Valid &^= fuse.FATTR_SIZE
		if errno := n.LoopbackNode.Setattr(ctx, nil, &rest, out); errno != 0 {
			return errno
		}
	}
	return n.Getattr(ctx, f, out)
}

// lastLink is the inode number of a regular file at path whose only name it is.
func lastLink(path string) (uint64, bool) {
	var st syscall.Stat_t
	if syscall.Lstat(path, &st) != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Nlink != 1 {
		return 0, false
	}
	return st.Ino, true
}

func (n *lazyNode) Unlink(ctx context.Context, name string) syscall.Errno {
	ino, last := lastLink(filepath.Join(n.backingPath(), name))
	errno := n.LoopbackNode.Unlink(ctx, name)
	if errno == 0 && last {
		n.lfs.discardIfClosed(ino)
	}
	return errno
}

// Rename passes through; a file it replaces loses its unflushed changes like an unlinked one.
func (n *lazyNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	var ino uint64
	var last bool
	if p, ok := newParent.(*lazyNode); ok && flags&unix.RENAME_EXCHANGE == 0 {
		ino, last = lastLink(filepath.Join(p.backingPath(), newName))
		// A rename onto another name of the same file replaces nothing.
		var src syscall.Stat_t
		if last && syscall.Lstat(filepath.Join(n.backingPath(), name), &src) == nil && src.Ino == ino {
			last = false
		}
	}
	errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if errno == 0 && last {
		n.lfs.discardIfClosed(ino)
	}
	return errno
}

// lazyFile is an open regular file. It implements only what it means to: no
// passthrough, no fallocate, no SEEK_DATA (those would bypass the overlay).
type lazyFile struct {
	lfs  *lazyFS
	file *os.File
	ino  uint64
	// sync: opened O_SYNC or O_DSYNC, so every write is flushed before it returns.
	sync bool
}

var (
	_ fs.FileReader   = (*lazyFile)(nil)
	_ fs.FileWriter   = (*lazyFile)(nil)
	_ fs.FileFsyncer  = (*lazyFile)(nil)
	_ fs.FileFlusher  = (*lazyFile)(nil)
	_ fs.FileReleaser = (*lazyFile)(nil)
)

// newFile wraps a backing descriptor; created says the backing file is new, so any
// state left for its inode number belongs to an earlier file and is dropped.
func (l *lazyFS) newFile(file *os.File, flags uint32, created bool) (*lazyFile, syscall.Errno) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(file.Fd()), &st); err != nil {
		file.Close()
		return nil, fs.ToErrno(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if created {
		l.discard(st.Ino)
	}
	l.state(st.Ino).open++
	return &lazyFile{lfs: l, file: file, ino: st.Ino, sync: flags&syscall.O_DSYNC != 0}, 0
}

func (f *lazyFile) fd() int {
	return int(f.file.Fd())
}

func (f *lazyFile) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	l := f.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int
	var err error
	if s := l.files[f.ino]; s != nil && s.ov != nil {
		n, err = s.ov.readAt(f.file, dest, off)
	} else {
		n, err = f.file.ReadAt(dest, off)
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), fs.OK
}

func (f *lazyFile) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	l := f.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.state(f.ino)
	if s.ov == nil {
		var st syscall.Stat_t
		if err := syscall.Fstat(f.fd(), &st); err != nil {
			return 0, fs.ToErrno(err)
		}
		s.ov = newOverlay(st.Size)
	}
	if l.held+s.ov.newPages(off, len(data))*pageBytes > l.heldMax {
		fmt.Fprintf(os.Stderr, "lazyfs: refusing a write: %d bytes unflushed, the limit is %d (-max-unflushed-mib)\n", l.held, l.heldMax)
		return 0, syscall.ENOSPC
	}
	before := s.ov.heldBytes()
	err := s.ov.writeAt(f.file, data, off)
	l.held += s.ov.heldBytes() - before
	if err == nil && f.sync {
		err = f.flushLocked(s)
	}
	if err != nil {
		return 0, fs.ToErrno(err)
	}
	return uint32(len(data)), fs.OK
}

// Fsync (and fdatasync: the overlay has no metadata of its own) makes the file's
// unflushed changes durable: they go to the backing file.
func (f *lazyFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	l := f.lfs
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.files[f.ino]
	if s == nil {
		return fs.OK
	}
	return fs.ToErrno(f.flushLocked(s))
}

// flushLocked writes the overlay to the backing file and drops it; the caller holds mu.
func (f *lazyFile) flushLocked(s *fileState) error {
	if s.ov == nil {
		return nil
	}
	w := f.file
	if flags, err := unix.FcntlInt(f.file.Fd(), unix.F_GETFL, 0); err == nil && flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		// An fsync through a read-only handle flushes too: reopen the same inode to write.
		rw, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", f.fd()), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer rw.Close()
		w = rw
	}
	if err := s.ov.flush(w); err != nil {
		return err
	}
	f.lfs.held -= s.ov.heldBytes()
	s.ov = nil
	return nil
}

// Flush is close(2): it does not make anything durable.
func (f *lazyFile) Flush(ctx context.Context) syscall.Errno {
	return fs.OK
}

// Release closes the backing descriptor; the last close of an unlinked file drops its changes.
func (f *lazyFile) Release(ctx context.Context) syscall.Errno {
	l := f.lfs
	l.mu.Lock()
	if s := l.files[f.ino]; s != nil {
		s.open--
		var st syscall.Stat_t
		if s.open == 0 && syscall.Fstat(f.fd(), &st) == nil && st.Nlink == 0 {
			l.discard(f.ino)
		}
		l.tidy(f.ino)
	}
	l.mu.Unlock()
	return fs.ToErrno(f.file.Close())
}

// The overlay of one file: the data written or truncated since the file was last
// fsynced, kept in memory over the backing file, which holds exactly what was fsynced.
// Pure logic over a backing store given to each call, so it is tested without FUSE.
package main

import (
	"errors"
	"io"
)

// pageBytes is the unit the overlay keeps: a write of one byte holds its whole page.
const pageBytes = 4096

// store is the backing file: *os.File is one.
type store interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
}

// overlay is what a file looks like through the mount while it has unflushed changes.
// Invariants: kept <= size; bytes of a page at or past size are zero.
type overlay struct {
	// size is the file's size as readers of the mount see it.
	size int64
	// kept is how much of the backing file is still the file's content: the smallest
	// size the file had since its last flush (a truncate hides the backing data past it).
	kept int64
	// pages are the dirty pages, by index (offset / pageBytes).
	pages map[int64][]byte
}

// newOverlay starts an overlay over a backing file of backingSize bytes.
func newOverlay(backingSize int64) *overlay {
	return &overlay{size: backingSize, kept: backingSize, pages: map[int64][]byte{}}
}

// heldBytes is the memory the overlay holds.
func (o *overlay) heldBytes() int64 {
	return int64(len(o.pages)) * pageBytes
}

// newPages is how many pages a write of n bytes at off would add.
func (o *overlay) newPages(off int64, n int) int64 {
	var count int64
	for p := off / pageBytes; n > 0 && p <= (off+int64(n)-1)/pageBytes; p++ {
		if _, ok := o.pages[p]; !ok {
			count++
		}
	}
	return count
}

// readBacking fills buf with the backing file's content at off: the part below kept,
// zeros past it (and past the backing file's end).
func (o *overlay) readBacking(b store, buf []byte, off int64) error {
	clear(buf)
	valid := min(int64(len(buf)), o.kept-off)
	if valid <= 0 {
		return nil
	}
	_, err := b.ReadAt(buf[:valid], off)
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// page returns page p, loading it from the backing file the first time it is dirtied.
func (o *overlay) page(b store, p int64) ([]byte, error) {
	if pg, ok := o.pages[p]; ok {
		return pg, nil
	}
	pg := make([]byte, pageBytes)
	if err := o.readBacking(b, pg, p*pageBytes); err != nil {
		return nil, err
	}
	o.pages[p] = pg
	return pg, nil
}

// readAt reads the file at off into buf; it returns the bytes read (0 at the end).
func (o *overlay) readAt(b store, buf []byte, off int64) (int, error) {
	n := int(min(int64(len(buf)), max(o.size-off, 0)))
	for done := 0; done < n; {
		at := off + int64(done)
		p, in := at/pageBytes, int(at%pageBytes)
		chunk := min(pageBytes-in, n-done)
		if pg, ok := o.pages[p]; ok {
			copy(buf[done:done+chunk], pg[in:in+chunk])
		} else if err := o.readBacking(b, buf[done:done+chunk], at); err != nil {
			return 0, err
		}
		done += chunk
	}
	return n, nil
}

// writeAt writes data at off into the overlay.
func (o *overlay) writeAt(b store, data []byte, off int64) error {
	for done := 0; done < len(data); {
		at := off + int64(done)
		p, in := at/pageBytes, int(at%pageBytes)
		pg, err := o.page(b, p)
		if err != nil {
			return err
		}
		done += copy(pg[in:], data[done:])
	}
	o.size = max(o.size, off+int64(len(data)))
	return nil
}

// truncate sets the file's size: pages past it are dropped, the rest of its last page is zeroed.
func (o *overlay) truncate(size int64) {
	for p, pg := range o.pages {
		start := p * pageBytes
		switch {
		case start >= size:
			delete(o.pages, p)
		case start+pageBytes > size:
			clear(pg[size-start:])
		}
	}
	o.size = size
	o.kept = min(o.kept, size)
}

// flush writes the overlay to the backing file, which then holds the file's content:
// the stale part past kept is cut off, the dirty pages written, the size set. The
// caller then syncs the backing file if it wants and drops the overlay.
func (o *overlay) flush(b store) error {
	if err := b.Truncate(o.kept); err != nil {
		return err
	}
	for p, pg := range o.pages {
		start := p * pageBytes
		n := min(pageBytes, o.size-start)
		if n <= 0 {
			continue
		}
		if _, err := b.WriteAt(pg[:n], start); err != nil {
			return err
		}
	}
	return b.Truncate(o.size)
}

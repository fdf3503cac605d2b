// The overlay against a model: random writes, truncates, flushes and power cuts on a
// real backing file, checking after each step that reads through the overlay give the
// file as written and that the backing file holds exactly what was last flushed.
package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func readAll(t *testing.T, o *overlay, b store) []byte {
	t.Helper()
	buf := make([]byte, o.size+100)
	n, err := o.readAt(b, buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

func backingContent(t *testing.T, path string) []byte {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestOverlayKeepsExactlyTheFlushedBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	b, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	if _, err := b.Write(bytes.Repeat([]byte{1}, 10_000)); err != nil {
		t.Fatal(err)
	}
	o := newOverlay(10_000)
	// A write over the end, then a truncate into the flushed part, then a write past a hole.
	if err := o.writeAt(b, bytes.Repeat([]byte{2}, 5_000), 8_000); err != nil {
		t.Fatal(err)
	}
	o.truncate(3_000)
	if err := o.writeAt(b, []byte{3}, 20_000); err != nil {
		t.Fatal(err)
	}
	want := append(append(bytes.Repeat([]byte{1}, 3_000), make([]byte, 17_000)...), 3)
	if got := readAll(t, o, b); !bytes.Equal(got, want) {
		t.Fatalf("read through the overlay: %d bytes, want %d", len(got), len(want))
	}
	if got := backingContent(t, path); !bytes.Equal(got, bytes.Repeat([]byte{1}, 10_000)) {
		t.Fatalf("the backing file changed before a flush: %d bytes", len(got))
	}
	if err := o.flush(b); err != nil {
		t.Fatal(err)
	}
	if got := backingContent(t, path); !bytes.Equal(got, want) {
		t.Fatalf("after the flush the backing file has %d bytes, want %d", len(got), len(want))
	}
}

func TestOverlayAgainstAModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	path := filepath.Join(t.TempDir(), "f")
	b, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	var current, flushed []byte
	o := newOverlay(0)
	for step := 0; step < 3_000; step++ {
		switch op := rng.IntN(10); {
		case op < 6:
			off := rng.Int64N(40_000)
			data := bytes.Repeat([]byte{byte(1 + rng.IntN(255))}, 1+rng.IntN(9_000))
			if err := o.writeAt(b, data, off); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			if end := off + int64(len(data)); end > int64(len(current)) {
				current = append(current, make([]byte, end-int64(len(current)))...)
			}
			copy(current[off:], data)
		case op < 8:
			size := rng.Int64N(45_000)
			o.truncate(size)
			if size < int64(len(current)) {
				current = current[:size]
			} else {
				current = append(current, make([]byte, size-int64(len(current)))...)
			}
		case op < 9:
			if err := o.flush(b); err != nil {
				t.Fatal(err)
			}
			flushed = append([]byte(nil), current...)
			o = newOverlay(int64(len(flushed)))
		default:
			// The power cut: the overlay is gone, the file is what was flushed.
			current = append([]byte(nil), flushed...)
			o = newOverlay(int64(len(flushed)))
		}
		if got := readAll(t, o, b); !bytes.Equal(got, current) {
			t.Fatalf("seed %d step %d: the overlay reads %d bytes unlike the model's %d", seed, step, len(got), len(current))
		}
		if got := backingContent(t, path); !bytes.Equal(got, flushed) {
			t.Fatalf("seed %d step %d: the backing file (%d bytes) is not what was flushed (%d bytes)", seed, step, len(got), len(flushed))
		}
		if o.kept > o.size {
			t.Fatalf("seed %d step %d: kept %d past size %d", seed, step, o.kept, o.size)
		}
	}
}

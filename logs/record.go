package logs

import (
	"bufio"
	"encoding/binary"
	"hash/crc32"
	"io"
)

// Records. A segment file is a sequence of records, each framed as
//
//	length  uint32 little-endian: bytes in body (> 0)
//	crc     uint32 little-endian: CRC-32C (Castagnoli) of body
//	body    a kind byte, then that kind's fields
//
// Integers in bodies are varints (encoding/binary: Uvarint, or zig-zag
// Varint for times, which are Unix nanoseconds); strings are a Uvarint
// length then the bytes. The kinds:
//
//	batch       key, count, count × (time, stream, message)
//	            The entries of one Append, written with one write(2); key
//	            is the Source key ("" for Store.Append).
//	checkpoint  count, count × (key, last time, n, n × (time, hash uint64 LE))
//	            First record of every segment: each source's cursor (see
//	            cursor) as it stood when the segment was started.
//	forget      key
//	            Store.Forget: the source's cursor is gone from here on.
//
// A record that is cut short, fails its CRC or does not decode ends the
// segment for every reader: that is how a write torn by a crash is found.
const (
	kindBatch      = 1
	kindCheckpoint = 2
	kindForget     = 3

	headerSize = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// beginRecord appends a placeholder header and the kind to b; endRecord
// fills the header in once the body is complete.
func beginRecord(b []byte, kind byte) (_ []byte, start int) {
	start = len(b)
	return append(b, 0, 0, 0, 0, 0, 0, 0, 0, kind), start
}

func endRecord(b []byte, start int) []byte {
	body := b[start+headerSize:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendBatch encodes entries, whose times must all be set, as one record.
func appendBatch(b []byte, key string, entries []Entry) []byte {
	b, start := beginRecord(b, kindBatch)
	b = appendString(b, key)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = binary.AppendVarint(b, e.Time.UnixNano())
		b = appendString(b, e.Stream)
		b = appendString(b, e.Message)
	}
	return endRecord(b, start)
}

func appendForget(b []byte, key string) []byte {
	b, start := beginRecord(b, kindForget)
	b = appendString(b, key)
	return endRecord(b, start)
}

// decoder reads the fields of one record body; after the first malformed
// field every read returns zero values and bad is set.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) fail() {
	d.bad = true
	d.b = nil
}

// batchReader walks the entries of a batch body without copying them.
type batchReader struct {
	d   decoder
	key []byte
	n   uint64
}

func readBatch(body []byte) (batchReader, bool) {
	br := batchReader{d: decoder{b: body[1:]}}
	br.key = br.d.bytes()
	br.n = br.d.uvarint()
	return br, !br.d.bad
}

// next returns the next entry; its slices alias the body. ok is false at
// the end of the batch or if the body is malformed (then br.d.bad is set).
func (br *batchReader) next() (t int64, stream, msg []byte, ok bool) {
	if br.n == 0 || br.d.bad {
		return 0, nil, nil, false
	}
	br.n--
	t = br.d.varint()
	stream = br.d.bytes()
	msg = br.d.bytes()
	return t, stream, msg, !br.d.bad
}

// scanner reads the valid records of one segment, up to limit bytes.
type scanner struct {
	r     *bufio.Reader
	limit int64
	// off is the end of the last valid record returned: where a torn
	// tail starts if next stops early.
	off  int64
	hdr  [headerSize]byte
	body []byte
	// err is an I/O error that stopped the scan, as opposed to a torn or
	// corrupt record (which only stops it).
	err error
}

func newScanner(r io.Reader, limit int64) *scanner {
	return &scanner{r: bufio.NewReaderSize(r, 256<<10), limit: limit}
}

// reset makes sc read another segment, reusing its buffers.
func (sc *scanner) reset(r io.Reader, limit int64) {
	sc.r.Reset(r)
	sc.limit, sc.off, sc.err = limit, 0, nil
}

// next returns the next record's body, valid until the following call,
// or false at the end of the segment or at its first bad record.
func (sc *scanner) next() ([]byte, bool) {
	left := sc.limit - sc.off
	if left < headerSize+1 {
		return nil, false
	}
	if _, err := io.ReadFull(sc.r, sc.hdr[:]); err != nil {
		sc.err = err
		return nil, false
	}
	n := int64(binary.LittleEndian.Uint32(sc.hdr[:]))
	if n == 0 || n > left-headerSize {
		return nil, false
	}
	if int64(cap(sc.body)) < n {
		sc.body = make([]byte, n)
	}
	body := sc.body[:n]
	if _, err := io.ReadFull(sc.r, body); err != nil {
		sc.err = err
		return nil, false
	}
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(sc.hdr[4:]) {
		return nil, false
	}
	sc.off += headerSize + n
	return body, true
}

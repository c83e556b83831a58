package local

import (
	"fmt"
	"strings"
)

// Key encoding.
//
// A key maps to a relative path, one or more names per "/"-separated segment:
//
//   - Bytes a-z, 0-9 and "-._~=," stand for themselves; an upper-case letter is "!" and the
//     letter in lower case (as Go's module cache does); any other byte is "%" and two
//     lower-case hex digits. Names are therefore lower-case ASCII, safe on case-insensitive
//     and normalising file systems, and each key has exactly one encoding.
//   - A name that would be "." or ".." has its dots escaped ("%2e").
//   - A segment longer than segmentChunk bytes is cut into segmentChunk-byte chunks; every
//     chunk but the last is a directory whose name ends in "+" (continued segment).
//   - The last chunk of the last segment, plus dataSuffix or metaSuffix, names the object's
//     files. Other segments are plain directories.
//
// "+" and "@" never occur in an encoded chunk, so object files, plain directories and
// continuation directories can never share a name: "a" is "a@data", "a/b" is "a/b@data",
// "a@data" is "a%40data@data".

// segmentChunk is how many key bytes one name holds: at most three characters per byte plus
// the suffix stays below the 255-byte name limit of common file systems.
const segmentChunk = 80

const (
	dataSuffix = "@data"
	metaSuffix = "@meta"
	contSuffix = "+"
)

const hexDigits = "0123456789abcdef"

func literal(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '=' || c == ','
}

// keyPath is the slash-separated path of key, without suffix, relative to the objects
// directory. key must be valid (providers.ValidateKey).
func keyPath(key string) string {
	b := make([]byte, 0, len(key)+len(key)/2)
	for i, seg := range strings.Split(key, "/") {
		if i > 0 {
			b = append(b, '/')
		}
		for len(seg) > segmentChunk {
			b = appendEncoded(b, seg[:segmentChunk])
			b = append(b, contSuffix+"/"...)
			seg = seg[segmentChunk:]
		}
		b = appendEncoded(b, seg)
	}
	return string(b)
}

func appendEncoded(b []byte, chunk string) []byte {
	if chunk == "." || chunk == ".." {
		// The file system would read these as the directory itself or its parent (a key
		// continuing "<80 bytes>./x" must not land on "<80 bytes>x").
		return append(b, strings.Repeat("%2e", len(chunk))...)
	}
	for i := 0; i < len(chunk); i++ {
		c := chunk[i]
		switch {
		case literal(c):
			b = append(b, c)
		case 'A' <= c && c <= 'Z':
			b = append(b, '!', c-'A'+'a')
		default:
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&0xf])
		}
	}
	return b
}

// decodeName reverses appendEncoded. It rejects any name that appendEncoded would not have
// produced, so that a stray file cannot alias a key.
func decodeName(name string) (string, bool) {
	b := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '!' && i+1 < len(name):
			b = append(b, name[i+1]-'a'+'A')
			i++
		case c == '%' && i+2 < len(name):
			hi, lo := strings.IndexByte(hexDigits, name[i+1]), strings.IndexByte(hexDigits, name[i+2])
			if hi < 0 || lo < 0 {
				return "", false
			}
			b = append(b, byte(hi<<4|lo))
			i += 2
		default:
			b = append(b, c)
		}
	}
	// Decoding is lenient; only the canonical encoding of the result is accepted.
	if string(appendEncoded(nil, string(b))) != name {
		return "", false
	}
	return string(b), true
}

// nameKind says what a directory entry under objects/ is.
type nameKind int

// The order breaks ties when sorting siblings by prefix in List: a file whose key equals a
// continuation's prefix sorts before every key under that continuation.
const (
	kindFile nameKind = iota // "<chunk>@data": an object
	kindCont                 // "<chunk>+": a segment continues below
	kindDir                  // "<chunk>": a segment ends, keys continue with "/"
)

// parseName decodes one entry of a directory whose keys start with parent. It returns the
// object's key (kindFile) or the prefix of every key below the directory, and false for
// anything this package does not write there (metadata, strays, non-canonical names).
func parseName(parent, name string, isDir, isRegular bool) (nameKind, string, bool) {
	var kind nameKind
	switch {
	case isDir && strings.HasSuffix(name, contSuffix):
		kind, name = kindCont, strings.TrimSuffix(name, contSuffix)
	case isDir:
		kind = kindDir
	case isRegular && strings.HasSuffix(name, dataSuffix):
		kind, name = kindFile, strings.TrimSuffix(name, dataSuffix)
	default:
		return 0, "", false
	}
	chunk, ok := decodeName(name)
	if !ok || chunk == "" || len(chunk) > segmentChunk || kind == kindCont && len(chunk) != segmentChunk {
		return 0, "", false
	}
	if kind == kindDir {
		return kind, parent + chunk + "/", true
	}
	return kind, parent + chunk, true
}

// keyFromPath reverses keyPath for a path ending in dataSuffix.
func keyFromPath(path string) (string, error) {
	names := strings.Split(path, "/")
	var key string
	for i, name := range names {
		last := i == len(names)-1
		kind, next, ok := parseName(key, name, !last, last)
		if !ok || last != (kind == kindFile) {
			return "", fmt.Errorf("%q: name %q is not an encoded key", path, name)
		}
		key = next
	}
	if keyPath(key)+dataSuffix != path {
		return "", fmt.Errorf("%q is not the canonical path of key %q", path, key)
	}
	return key, nil
}

package codec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

// Metadata of an encrypted payload.
const (
	// EncodingEncrypted is the "encoding" of a payload this codec sealed.
	EncodingEncrypted = "binary/encrypted"
	// MetadataKeyID names the key that sealed the payload.
	MetadataKeyID = "encryption-key-id"
	// MetadataCipher names the cipher.
	MetadataCipher = "encryption-cipher"
	cipherName     = "AES-256-GCM"
)

// ErrUnknownKey is a payload sealed under a key the keyring does not have (removed, or
// another deployment's).
var ErrUnknownKey = errors.New("payload sealed under a key this keyring does not have")

// Codec is a converter.PayloadCodec that seals every payload with AES-256-GCM.
type Codec struct {
	active string
	aeads  map[string]cipher.AEAD
}

var _ converter.PayloadCodec = (*Codec)(nil)

// New builds the codec of a keyring.
func New(k *Keyring) (*Codec, error) {
	if err := k.validate(); err != nil {
		return nil, fmt.Errorf("payload keyring: %w", err)
	}
	c := &Codec{active: k.Active, aeads: map[string]cipher.AEAD{}}
	for _, key := range k.Keys {
		block, err := aes.NewCipher(key.Key)
		if err != nil {
			return nil, fmt.Errorf("payload key %s: %w", key.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("payload key %s: %w", key.ID, err)
		}
		c.aeads[key.ID] = aead
	}
	return c, nil
}

// Open loads the keyring at path and builds its codec.
func Open(path string) (*Codec, error) {
	k, err := LoadKeyring(path)
	if err != nil {
		return nil, err
	}
	return New(k)
}

// ActiveKey is the ID of the key new payloads are sealed under.
func (c *Codec) ActiveKey() string { return c.active }

// DataConverter wraps the SDK's default data converter with the codec: what clients and
// workers pass as client.Options.DataConverter.
func (c *Codec) DataConverter() converter.DataConverter {
	return converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c)
}

// Encode seals each payload whole (its metadata and data) under the active key. The key ID is
// bound to the ciphertext, so a payload relabelled with another key ID does not open.
func (c *Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	aead := c.aeads[c.active]
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encode payload: %w", err)
		}
		sealed := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
		if _, err := rand.Read(sealed); err != nil {
			return nil, fmt.Errorf("payload nonce: %w", err)
		}
		sealed = aead.Seal(sealed, sealed, plain, []byte(c.active))
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{
				converter.MetadataEncoding: []byte(EncodingEncrypted),
				MetadataKeyID:              []byte(c.active),
				MetadataCipher:             []byte(cipherName),
			},
			Data: sealed,
		}
	}
	return out, nil
}

// Decode opens the payloads this codec sealed, under whichever key of the keyring sealed
// them, and passes others through unchanged (payloads written before the codec was enabled).
// A sealed payload that does not open is an error naming its key, never garbage.
func (c *Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if string(p.GetMetadata()[converter.MetadataEncoding]) != EncodingEncrypted {
			out[i] = p
			continue
		}
		id := string(p.GetMetadata()[MetadataKeyID])
		aead, ok := c.aeads[id]
		if !ok {
			return nil, fmt.Errorf("decode payload: key %q: %w", id, ErrUnknownKey)
		}
		data := p.GetData()
		if len(data) < aead.NonceSize()+aead.Overhead() {
			return nil, fmt.Errorf("decode payload sealed under key %q: %d bytes, too short", id, len(data))
		}
		nonce, sealed := data[:aead.NonceSize()], data[aead.NonceSize():]
		plain, err := aead.Open(nil, nonce, sealed, []byte(id))
		if err != nil {
			return nil, fmt.Errorf("decode payload sealed under key %q: does not authenticate (altered, or another deployment's key)", id)
		}
		var dec commonpb.Payload
		if err := proto.Unmarshal(plain, &dec); err != nil {
			return nil, fmt.Errorf("decode payload sealed under key %q: %w", id, err)
		}
		out[i] = &dec
	}
	return out, nil
}

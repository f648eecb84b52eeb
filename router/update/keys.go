package update

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Signatures are ed25519 over the image's SHA-256, base64 (what mkimage
// writes as routerd.efi.sig and `update --signature` takes). Keys are the
// PEM files openssl makes: `openssl genpkey -algorithm ed25519 -out
// update.key` and `openssl pkey -in update.key -pubout -out update.pub`.

// SignFile signs digest with the PKCS #8 PEM private key in file.
func SignFile(file string, digest []byte) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return "", fmt.Errorf("%s: not PEM", file)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return "", fmt.Errorf("%s: not an ed25519 key", file)
	}
	return base64.StdEncoding.EncodeToString(ed25519.Sign(priv, digest)), nil
}

// ParseSignature decodes a base64 signature.
func ParseSignature(s string) ([]byte, error) {
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, errors.New("not a base64 ed25519 signature")
	}
	return sig, nil
}

package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// APITokenPrefix starts every personal API token, so that tokens are
// recognisable in a leaked file and told apart from JWTs without parsing.
const APITokenPrefix = "nvc_"

// MinSecretLen is the shortest JWT signing secret accepted.
const MinSecretLen = 32

// Signer issues and verifies the JWTs of login sessions. A JWT only names
// its session; the session row decides whether it still works.
type Signer struct {
	secret []byte
	issuer string
}

// NewSigner returns a signer for HS256 JWTs.
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("auth: signing secret must be at least %d bytes", MinSecretLen)
	}
	return &Signer{secret: secret, issuer: "novacron"}, nil
}

type claims struct {
	SessionID string `json:"sid"`
	jwt.RegisteredClaims
}

// Sign returns a JWT for the session.
func (s *Signer) Sign(sessionID, userID string, issued, expires time.Time) (string, error) {
	c := claims{
		SessionID: sessionID,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   userID,
			IssuedAt:  jwt.NewNumericDate(issued),
			ExpiresAt: jwt.NewNumericDate(expires),
		},
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.secret)
}

// Verify checks a JWT's signature and expiry at now and returns its session
// and user ids.
func (s *Signer) Verify(token string, now time.Time) (sessionID, userID string, err error) {
	var c claims
	_, err = jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return s.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(s.issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	if err != nil {
		return "", "", err
	}
	if c.SessionID == "" || c.Subject == "" {
		return "", "", errors.New("token names no session")
	}
	return c.SessionID, c.Subject, nil
}

// NewAPIToken returns a new personal API token and the hash stored for it.
func NewAPIToken() (token, hash string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("auth: no randomness: " + err.Error())
	}
	token = APITokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return token, HashAPIToken(token)
}

// HashAPIToken returns the stored form of a personal API token. The tokens
// carry 256 random bits, so a fast hash is enough.
func HashAPIToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// IsAPIToken reports whether a bearer credential is a personal API token.
func IsAPIToken(token string) bool { return strings.HasPrefix(token, APITokenPrefix) }

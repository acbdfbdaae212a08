package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/go-multierror"
)

// NamePlaceholder in a path is replaced by the server's name, so that one
// config serves every server ("/etc/herd/{name}.crt").
const NamePlaceholder = "{name}"

// Client authentication policies of [TLS.ClientAuth].
const (
	ClientAuthNone          = "none"
	ClientAuthVerifyIfGiven = "verify_if_given"
	ClientAuthRequire       = "require"
)

// TLS is the "tls" object of a herd config file (and what serve's -tls-*
// flags build): the server's certificate and the CA bundle that both its
// listener and its dials to neighbours use. One tls.Config serves both
// directions (see package transport), so a server's certificate is also
// its client certificate towards the neighbours it dials.
type TLS struct {
	// Cert and Key are PEM files: the server's certificate chain and its
	// private key. {name} is replaced by the server's name. Required.
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
	// CA is a PEM bundle of the certificate authorities trusted both for
	// neighbours' server certificates (RootCAs) and for client
	// certificates (ClientCAs). {name} is replaced. Empty means the
	// system's roots.
	CA string `json:"ca,omitempty"`
	// ClientAuth is "none" (never ask for a client certificate),
	// "verify_if_given" (the default: verify one if the other side sends
	// it, so plain clients need none while servers present theirs) or
	// "require" (every connection, clients included, needs a verified
	// certificate).
	ClientAuth string `json:"client_auth,omitempty"`
	// RequirePeerCert refuses a peer link unless the other server
	// presented a verified certificate naming it (herd.Config's
	// RequirePeerCert). It needs ClientAuth verify_if_given or require.
	RequirePeerCert bool `json:"require_peer_cert,omitempty"`
	// ServerName is the name checked in a neighbour's certificate when
	// dialing it; empty means the host part of the neighbour's address.
	ServerName string `json:"server_name,omitempty"`
}

// FileNames names TLS's fields as a config file spells them
// ("tls.client_auth").
func FileNames(key string) string { return "tls." + key }

// FlagNames names TLS's fields as serve's flags spell them
// ("-tls-client-auth").
func FlagNames(key string) string { return "-tls-" + strings.ReplaceAll(key, "_", "-") }

// Check validates the fields without reading any file and returns every
// problem, each naming its field with name (given the JSON key).
func (t *TLS) Check(name func(key string) string) []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name(key), fmt.Sprintf(format, args...)))
	}
	if t.Cert == "" {
		bad("cert", "must be set: the server's certificate (PEM file)")
	}
	if t.Key == "" {
		bad("key", "must be set: the server's private key (PEM file)")
	}
	if _, err := t.clientAuth(); err != nil {
		bad("client_auth", "%v", err)
	} else if t.RequirePeerCert && t.ClientAuth == ClientAuthNone {
		bad("require_peer_cert", "needs %s %q or %q: with %q no server ever sees the certificate of a neighbour that dials it", name("client_auth"), ClientAuthVerifyIfGiven, ClientAuthRequire, ClientAuthNone)
	}
	return errs
}

func (t *TLS) clientAuth() (tls.ClientAuthType, error) {
	switch t.ClientAuth {
	case ClientAuthNone:
		return tls.NoClientCert, nil
	case "", ClientAuthVerifyIfGiven:
		return tls.VerifyClientCertIfGiven, nil
	case ClientAuthRequire:
		return tls.RequireAndVerifyClientCert, nil
	}
	return 0, fmt.Errorf("%q is not a policy (want %s, %s or %s)", t.ClientAuth, ClientAuthNone, ClientAuthVerifyIfGiven, ClientAuthRequire)
}

// Config reads the files for server (with {name} replaced by it) and
// returns the tls.Config for its transport.TCP: its certificate, CA as
// RootCAs and ClientCAs, the client authentication policy and ServerName.
// Every problem is reported at once, each naming its field with name.
func (t *TLS) Config(server string, name func(key string) string) (*tls.Config, error) {
	errs := &multierror.Error{ErrorFormat: ListFormat}
	for _, err := range t.Check(name) {
		errs = multierror.Append(errs, err)
	}
	if err := errs.ErrorOrNil(); err != nil {
		return nil, err
	}
	auth, _ := t.clientAuth()
	cfg := &tls.Config{ClientAuth: auth, ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	certPath := strings.ReplaceAll(t.Cert, NamePlaceholder, server)
	keyPath := strings.ReplaceAll(t.Key, NamePlaceholder, server)
	certPEM, certErr := os.ReadFile(certPath)
	if certErr != nil {
		errs = multierror.Append(errs, fmt.Errorf("%s: %w", name("cert"), certErr))
	}
	keyPEM, keyErr := os.ReadFile(keyPath)
	if keyErr != nil {
		errs = multierror.Append(errs, fmt.Errorf("%s: %w", name("key"), keyErr))
	}
	if certErr == nil && keyErr == nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("%s, %s: %s and %s: %v", name("cert"), name("key"), certPath, keyPath, strings.TrimPrefix(err.Error(), "tls: ")))
		} else {
			cfg.Certificates = []tls.Certificate{pair}
		}
	}
	if t.CA != "" {
		pool, err := LoadCAs(strings.ReplaceAll(t.CA, NamePlaceholder, server))
		if err != nil {
			errs = multierror.Append(errs, fmt.Errorf("%s: %w", name("ca"), err))
		}
		cfg.RootCAs, cfg.ClientCAs = pool, pool
	}
	if err := errs.ErrorOrNil(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadCAs reads a PEM bundle of CA certificates.
func LoadCAs(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s: no PEM certificate in it", path)
	}
	return pool, nil
}

// ClientTLS builds the TLS config of a herd client (herd iamat, herd
// whatsat) from flags: ca, a PEM bundle to verify the server with (empty:
// the system's roots); cert and key, an optional client certificate (both
// or neither); serverName, the name to verify (empty: the host of the
// address dialed). Errors name the flags.
func ClientTLS(ca, cert, key, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if ca != "" {
		pool, err := LoadCAs(ca)
		if err != nil {
			return nil, fmt.Errorf("-tls-ca: %w", err)
		}
		cfg.RootCAs = pool
	}
	switch {
	case cert == "" && key == "":
	case cert == "" || key == "":
		return nil, errors.New("-tls-cert and -tls-key go together")
	default:
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("-tls-cert, -tls-key: %v", strings.TrimPrefix(err.Error(), "tls: "))
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

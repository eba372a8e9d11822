package qemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/kdomanski/iso9660"
)

// seedFiles returns the files of a cloud-init NoCloud seed for guest id:
// meta-data (JSON, which cloud-init's YAML parser reads; no YAML is ever
// assembled from user strings) and user-data as given ("#cloud-config"
// when empty).
func seedFiles(id string, ci CloudInit) (metaData, userData []byte, err error) {
	md := struct {
		InstanceID    string   `json:"instance-id"`
		LocalHostname string   `json:"local-hostname,omitempty"`
		PublicKeys    []string `json:"public-keys,omitempty"`
	}{id, ci.Hostname, ci.SSHAuthorizedKeys}
	metaData, err = json.MarshalIndent(md, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	metaData = append(metaData, '\n')
	userData = []byte(ci.UserData)
	if len(userData) == 0 {
		userData = []byte("#cloud-config\n")
	}
	return metaData, userData, nil
}

// writeSeed writes the NoCloud seed ISO (volume label "cidata") to w.
func writeSeed(w io.Writer, id string, ci CloudInit) error {
	metaData, userData, err := seedFiles(id, ci)
	if err != nil {
		return fmt.Errorf("cloud-init seed: %w", err)
	}
	iw, err := iso9660.NewWriter()
	if err != nil {
		return fmt.Errorf("cloud-init seed: %w", err)
	}
	defer iw.Cleanup()
	if err := iw.AddFile(bytes.NewReader(metaData), "meta-data"); err != nil {
		return fmt.Errorf("cloud-init seed: %w", err)
	}
	if err := iw.AddFile(bytes.NewReader(userData), "user-data"); err != nil {
		return fmt.Errorf("cloud-init seed: %w", err)
	}
	if err := iw.WriteTo(w, "cidata"); err != nil {
		return fmt.Errorf("cloud-init seed: %w", err)
	}
	return nil
}

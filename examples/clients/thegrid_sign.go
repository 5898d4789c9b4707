// Signed trading requests from Go with the standard library only.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

const baseURL = "http://127.0.0.1:8080"

func main() {
	// Go's 64-byte ed25519.PrivateKey, base64 (what ed25519.GenerateKey gives).
	raw, err := base64.StdEncoding.DecodeString(os.Getenv("GRID_TRADING_PRIVATE_KEY"))
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		fmt.Fprintln(os.Stderr, "GRID_TRADING_PRIVATE_KEY must be the base64 of a 64-byte Ed25519 private key")
		os.Exit(1)
	}
	privateKey := ed25519.PrivateKey(raw)
	sum := sha256.Sum256(privateKey.Public().(ed25519.PublicKey))
	fingerprint := base64.RawStdEncoding.EncodeToString(sum[:])

	send := func(method, path, body string) {
		timestamp := strconv.FormatInt(time.Now().Unix(), 10)
		signature := ed25519.Sign(privateKey, []byte(timestamp+method+path+body))
		req, err := http.NewRequest(method, baseURL+path, strings.NewReader(body))
		if err != nil {
			panic(err)
		}
		req.Header.Set("x-thegrid-signature", base64.StdEncoding.EncodeToString(signature))
		req.Header.Set("x-thegrid-timestamp", timestamp)
		req.Header.Set("x-thegrid-fingerprint", fingerprint)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, string(bytes.TrimSpace(data)))
	}
	send("POST", "/v1/orders", `{"symbol": "GRID-A", "side": "buy", "quantity": 3}`)
	send("GET", "/v1/balances", "")
}

// Call the example server (examples/quickstart.py) with Ed25519-signed requests from Node.
//
// Nothing but node:crypto and the built-in fetch (Node 18+). Make and register a key
// as examples/sign_client.py explains, then:
//
//   GRIDAUTH_URL=http://127.0.0.1:8080 GRIDAUTH_KEY_FILE=client-key.pem node examples/node_client.mjs
//
// It places an order signed with version 2 and reads the boards signed with
// version 1, and exits non-zero if the server refuses either.

import { createHash, createPrivateKey, createPublicKey, sign } from "node:crypto";
import { readFileSync } from "node:fs";

const base = (process.env.GRIDAUTH_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
const privateKey = createPrivateKey(readFileSync(process.env.GRIDAUTH_KEY_FILE ?? "client-key.pem"));

// Fingerprint: standard base64, without padding, of the SHA-256 of the raw 32-byte public key.
const rawPublicKey = Buffer.from(createPublicKey(privateKey).export({ format: "jwk" }).x, "base64url");
const fingerprint = createHash("sha256").update(rawPublicKey).digest("base64").replace(/=+$/, "");

function signedHeaders(method, url, body, version) {
  const timestamp = String(Math.floor(Date.now() / 1000));
  // The path with its query as fetch sends it; URL.search is "" when the query is empty.
  const target = url.pathname + url.search;
  let message;
  if (version === "1") {
    message = Buffer.concat([Buffer.from(timestamp + method + target), body]);
  } else {
    // url.host is lowercase and omits the scheme's default port, like the Host header fetch sends.
    const bodyHash = createHash("sha256").update(body).digest("hex");
    message = Buffer.from([timestamp, method, url.host, target, bodyHash].join("\n"));
  }
  return {
    "X-Grid-Signature": sign(null, message, privateKey).toString("base64"),
    "X-Grid-Timestamp": timestamp,
    "X-Grid-Fingerprint": fingerprint,
    "X-Grid-Signature-Version": version,
  };
}

async function call(method, path, body, version) {
  const url = new URL(base + path);
  const data = Buffer.from(body ?? "");
  const headers = signedHeaders(method, url, data, version);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : data });
  console.log(`${method} ${path} (v${version}): ${response.status} ${(await response.text()).trim()}`);
  return response.ok;
}

const results = [
  await call("POST", "/orders", JSON.stringify({ symbol: "ACME", quantity: 10 }), "2"),
  await call("GET", "/boards?page=1", undefined, "1"),
];
process.exit(results.every(Boolean) ? 0 : 1);

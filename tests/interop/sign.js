#!/usr/bin/env node
// Signs a webhook body the way other implementations do, for tests/webhook_interop.rs.
// Usage: node sign.js SCHEME SECRET TIMESTAMP ID BODY_FILE
// Prints the headers a sender would send, as a JSON object of lower-case name -> value.
//   hex-timestamp-body: exactly as the Node whatsapp service signs (CONTRACTS.md §2):
//                       HMAC-SHA256 over the timestamp string + the raw body string, hex.
//   standard-webhooks:  the official `standardwebhooks` package, Webhook(secret).sign(id, date, payload).
//   github:             "sha256=" + HMAC-SHA256 hex over the raw body.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const { Webhook } = require("standardwebhooks");

const [scheme, secret, timestamp, id, bodyFile] = process.argv.slice(2);
if (!bodyFile) {
  console.error("usage: node sign.js SCHEME SECRET TIMESTAMP ID BODY_FILE");
  process.exit(2);
}
// The raw body as the sender holds it: a string (the Node service signs JSON.stringify's output).
const body = fs.readFileSync(bodyFile, "utf8");

let headers;
switch (scheme) {
  case "hex-timestamp-body": {
    const signature = crypto.createHmac("sha256", secret).update(timestamp + body).digest("hex");
    headers = { "x-timestamp": timestamp, "x-hmac-signature": signature };
    break;
  }
  case "standard-webhooks": {
    const signature = new Webhook(secret).sign(id, new Date(Number(timestamp) * 1000), body);
    headers = { "webhook-id": id, "webhook-timestamp": timestamp, "webhook-signature": signature };
    break;
  }
  case "github": {
    const signature = crypto.createHmac("sha256", secret).update(body).digest("hex");
    headers = { "x-hub-signature-256": "sha256=" + signature };
    break;
  }
  default:
    console.error(`unknown scheme: ${scheme}`);
    process.exit(2);
}
process.stdout.write(JSON.stringify(headers) + "\n");

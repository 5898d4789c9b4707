// Signed trading requests from Node with tweetnacl (npm install tweetnacl) and the built-in fetch.
import crypto from 'node:crypto';
import nacl from 'tweetnacl';

const BASE_URL = 'http://127.0.0.1:8080';
// tweetnacl's 64-byte secretKey, base64: the seed followed by the public key.
const secretKey = new Uint8Array(Buffer.from(process.env.GRID_TRADING_PRIVATE_KEY, 'base64'));
const publicKey = secretKey.subarray(32);
const fingerprint = crypto.createHash('sha256').update(publicKey).digest('base64').replace(/=+$/, '');

function signed(method, path, body = '') {
  const timestamp = Math.floor(Date.now() / 1000).toString();
  const message = new Uint8Array(Buffer.from(timestamp + method + path + body));
  const signature = Buffer.from(nacl.sign.detached(message, secretKey)).toString('base64');
  return {
    'x-thegrid-signature': signature,
    'x-thegrid-timestamp': timestamp,
    'x-thegrid-fingerprint': fingerprint,
  };
}

const body = JSON.stringify({ symbol: 'GRID-A', side: 'buy', quantity: 2 });
const order = await fetch(`${BASE_URL}/v1/orders`, {
  method: 'POST',
  headers: { ...signed('POST', '/v1/orders', body), 'Content-Type': 'application/json' },
  body,
});
console.log(order.status, JSON.stringify(await order.json()));
const balances = await fetch(`${BASE_URL}/v1/balances`, { headers: signed('GET', '/v1/balances') });
console.log(balances.status, JSON.stringify(await balances.json()));

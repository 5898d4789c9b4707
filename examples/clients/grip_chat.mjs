// The JavaScript client of Grip's documentation (Node 18+: fetch is built in).
const GRIP_API_TOKEN = process.env.GRIP_API_TOKEN;
const BASE_URL = 'http://127.0.0.1:8080';
const headers = {
  'Authorization': `Bearer ${GRIP_API_TOKEN}`,
  'Content-Type': 'application/json'
};
const response = await fetch(`${BASE_URL}/api/v1/chat`, {
  method: 'POST',
  headers,
  body: JSON.stringify({
    message: 'Analyze this repository'
  })
});
const data = await response.json();
console.log(JSON.stringify(data));

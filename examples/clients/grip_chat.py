# The Python client of Grip's documentation, unchanged but for the address.
import os

import httpx

token = os.environ["GRIP_API_TOKEN"]
base_url = "http://127.0.0.1:8080"
headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
with httpx.Client(base_url=base_url, headers=headers) as client:
    response = client.post("/api/v1/chat", json={"message": "List files in the workspace"})
    print(response.json())

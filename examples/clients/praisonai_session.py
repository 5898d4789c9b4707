# The requests client of PraisonAI's documentation; the token comes from the environment.
import os

import requests

# Set up session with auth
session = requests.Session()
session.headers.update(
    {
        "Authorization": f"Bearer {os.environ['PRAISONAI_API_TOKEN']}",
        "Content-Type": "application/json",
    }
)

# Get agents
response = session.get("http://127.0.0.1:8080/agents")
agents = response.json()

# Chat with agent
response = session.post("http://127.0.0.1:8080/chat", json={"message": "What is artificial intelligence?"})
chat_response = response.json()
print(agents, chat_response)

# The same consumption key through the official Anthropic SDK (it sends x-api-key).
import os

from anthropic import Anthropic

client = Anthropic(
    base_url="http://127.0.0.1:8080",
    api_key=os.environ["GRID_API_KEY"],
)
message = client.messages.create(model="Text-Prime", max_tokens=256, messages=[{"role": "user", "content": "Hello"}])
print(message.content[0].text)

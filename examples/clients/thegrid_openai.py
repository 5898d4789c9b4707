# A consumption key through the official OpenAI SDK.
import os

from openai import OpenAI

client = OpenAI(
    base_url="http://127.0.0.1:8080/v1",
    api_key=os.environ["GRID_API_KEY"],
)
completion = client.chat.completions.create(model="Text-Prime", messages=[{"role": "user", "content": "Hello"}])
print(completion.choices[0].message.content)

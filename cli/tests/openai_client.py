"""The official `openai` Python client against `nanorun serve`.

Usage: python3 openai_client.py BASE_URL MODEL  (BASE_URL like http://127.0.0.1:8080/v1)
Completions and chat, streamed and not, usage counts, and error cases. Prints
"openai client: all checks passed" and exits 0 when every check holds.
"""

import sys

import openai

base_url, model = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=120)

# Completions, not streamed and streamed: same greedy text.
c = client.completions.create(model=model, prompt="Hello", max_tokens=5, temperature=0,
                              extra_body={"ignore_eos": True})
assert c.choices[0].finish_reason == "length", c
assert c.usage.completion_tokens == 5, c.usage
assert c.usage.total_tokens == c.usage.prompt_tokens + 5
text = c.choices[0].text
chunks = list(client.completions.create(model=model, prompt="Hello", max_tokens=5,
                                        temperature=0, stream=True,
                                        extra_body={"ignore_eos": True}))
assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == text
assert chunks[-1].choices[0].finish_reason == "length"

# Chat, not streamed and streamed.
msgs = [{"role": "user", "content": "Hi"}]
r = client.chat.completions.create(model=model, messages=msgs, max_tokens=4, temperature=0)
assert r.choices[0].message.role == "assistant"
assert r.usage.completion_tokens <= 4
stream = client.chat.completions.create(model=model, messages=msgs, max_tokens=4,
                                        temperature=0, stream=True,
                                        stream_options={"include_usage": True})
parts, usage = [], None
for ch in stream:
    if ch.choices and ch.choices[0].delta.content:
        parts.append(ch.choices[0].delta.content)
    if ch.usage:
        usage = ch.usage
assert "".join(parts) == r.choices[0].message.content, (parts, r)
assert usage is not None and usage.completion_tokens == r.usage.completion_tokens

# Models.
assert [m.id for m in client.models.list().data] == [model]

# Errors: 404 for an unknown model, 400 for bad parameters; the server keeps serving.
try:
    client.completions.create(model="gpt-4", prompt="x", max_tokens=1)
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as e:
    assert "gpt-4" in str(e)
try:
    client.completions.create(model=model, prompt="x", max_tokens=1, temperature=9)
    raise AssertionError("bad temperature accepted")
except openai.BadRequestError as e:
    assert "temperature" in str(e)
try:
    client.chat.completions.create(model=model, messages=[], max_tokens=1)
    raise AssertionError("empty messages accepted")
except openai.BadRequestError as e:
    assert "messages" in str(e)
assert client.completions.create(model=model, prompt="x", max_tokens=1).usage.prompt_tokens > 0

print("openai client: all checks passed")

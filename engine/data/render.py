"""Fine-tuning records rendered through the chat template into tokens with a loss mask.

    segments = render_record("instruct", {"instruction": ..., "input": ..., "output": ...})
    # [("<|im_start|>user\\n...<|im_end|>\\n<|im_start|>assistant\\n", False), ("...<|im_end|>\\n", True)]
    ids, mask = encode_segments(tokenizer, segments, eos_id)

The template is ChatML, the one ``cockpit tokenizer train`` writes into the tokenizer
(``engine.data.tokenizer.CHAT_TEMPLATE``): ``<|im_start|>ROLE\\nCONTENT<|im_end|>\\n`` per message.
What the model learns (mask 1) is what an assistant says -- its content and the ``<|im_end|>``
that ends it -- and the end-of-text token after the record; the system prompt, the user's turns,
tool results and the role headers are context only (mask 0). Per format:

``instruct``   user: instruction (and input, after a blank line); assistant: output
``chat``       the messages as they are; every assistant message is learnt
``tool``       user: user_message; assistant: the tool calls, as ``<tool_call>`` JSON blocks
               (learnt); tool: the results (context); assistant: assistant_response (learnt)
``reasoning``  user: question; assistant: ``<think>\\nREASONING\\n</think>\\n\\nANSWER`` (learnt)
``kd``         user: prompt; assistant: teacher_text (learnt; metadata is not rendered)

Segments are tokenized one by one (as torchtune does per message), so a mask boundary is always a
token boundary. Torch-free.
"""

from __future__ import annotations

import json
from typing import Any

START, END = "<|im_start|>", "<|im_end|>"
#: Formats rendered here (the others are plain documents).
CHAT_FORMATS = ("instruct", "chat", "tool", "reasoning", "kd")

Segments = list[tuple[str, bool]]


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)


def _turn(role: str, content: str, learnt: bool) -> Segments:
    if not learnt:
        return [(f"{START}{role}\n{content}{END}\n", False)]
    return [(f"{START}{role}\n", False), (f"{content}{END}\n", True)]


def render_record(fmt: str, record: dict) -> Segments:
    """The segments of a valid record of ``fmt`` (``engine.data.formats`` validated it)."""
    if fmt == "instruct":
        prompt = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
        return _turn("user", prompt, False) + _turn("assistant", record["output"], True)
    if fmt == "chat":
        out: Segments = []
        for message in record["messages"]:
            out += _turn(message["role"], message["content"], message["role"] == "assistant")
        return out
    if fmt == "tool":
        calls = "\n".join(f"<tool_call>\n{_json(call)}\n</tool_call>" for call in record["tool_calls"])
        out = _turn("user", record["user_message"], False)
        if calls:
            out += _turn("assistant", calls, True)
        for item in record["tool_results"]:
            out += _turn("tool", _json(item), False)
        return out + _turn("assistant", record["assistant_response"], True)
    if fmt == "reasoning":
        answer = f"<think>\n{record['reasoning']}\n</think>\n\n{record['answer']}"
        return _turn("user", record["question"], False) + _turn("assistant", answer, True)
    if fmt == "kd":
        return _turn("user", record["prompt"], False) + _turn("assistant", record["teacher_text"], True)
    raise ValueError(f"{fmt!r} is not a chat format (one of {', '.join(CHAT_FORMATS)})")


def encode_segments_batch(tokenizer, records: list[Segments], eos_id: int) -> list[tuple[list[int], list[int]]]:
    """Token ids and loss mask (1 learnt, 0 context) of each rendered record, the end-of-text token
    (learnt) after each; all segments of all records go through one ``encode_batch``."""
    flat = [text for segments in records for text, _ in segments]
    encodings = tokenizer.encode_batch(flat, add_special_tokens=False) if flat else []
    out = []
    k = 0
    for segments in records:
        ids: list[int] = []
        mask: list[int] = []
        for _, learnt in segments:
            seg = encodings[k].ids
            k += 1
            ids.extend(seg)
            mask.extend([int(learnt)] * len(seg))
        ids.append(eos_id)
        mask.append(1)
        out.append((ids, mask))
    return out


def markers_are_special(tokenizer) -> bool:
    """Whether ``<|im_start|>`` and ``<|im_end|>`` are single tokens of ``tokenizer`` (else they are
    spelled out in several tokens: it works, but costs tokens and is not what a chat model expects)."""
    return all(len(tokenizer.encode(m, add_special_tokens=False).ids) == 1 for m in (START, END))

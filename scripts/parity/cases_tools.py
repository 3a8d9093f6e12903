"""Chat templates with tools (spec/fixtures/tools/templates.json): what transformers' apply_chat_template renders for
the GLM-4.5V-style fixture template (spec/fixtures/tools/chat_template.jinja, thinking switch) and for the built-in
model's own template (assets/model/chat_template.jinja), on chats with tools, images and tool round trips.

usage: /work/pyref/bin/python scripts/parity/dump_reference.py cases_tools
"""
from __future__ import annotations

import json

from transformers import AutoProcessor

from common import FIXTURES, ROOT, write_json
from tiny_models import model_dir

OUT = FIXTURES / "tools"
BUILTIN = ROOT / "assets" / "model"

TOOLS = [
    {"type": "function", "function": {
        "name": "count_shapes", "description": "Count the shapes of one colour in the picture.",
        "parameters": {"type": "object", "properties": {
            "colour": {"type": "string", "enum": ["red", "green", "blue"]},
            "min_size": {"type": "integer"}, "filled": {"type": "boolean"}}, "required": ["colour"]}}},
    {"type": "function", "function": {
        "name": "lookup", "description": "Look a word up (ü é 😀).",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "opts": {"type": "object"}}}}},
]
IMAGE_Q = {"role": "user", "content": [{"type": "image", "image": "count.png"},
                                       {"type": "text", "text": "How many red shapes are there?"}]}
CALLS = {"role": "assistant", "content": "", "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "count_shapes", "arguments": {"colour": "red", "min_size": 2, "filled": True}}},
    {"id": "call_2", "type": "function", "function": {"name": "lookup", "arguments": {"query": "two \"shapes\"", "opts": {"n": [1, 2.5], "x": None}}}}]}
RESULTS = [{"role": "tool", "tool_call_id": "call_1", "content": "2"},
           {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "{\"hits\": 0}"}]}]
CHATS = {
    "tools_only": [{"role": "user", "content": "Count the blue shapes."}],
    "image_with_tools": [{"role": "system", "content": "You count shapes."}, IMAGE_Q],
    "round_trip": [IMAGE_Q, CALLS, *RESULTS],
    "round_trip_answered": [IMAGE_Q, CALLS, *RESULTS, {"role": "assistant", "content": "There are 2 red shapes."},
                            {"role": "user", "content": "And blue?/nothink"}],
    "call_with_text": [{"role": "user", "content": "Count red."},
                       {"role": "assistant", "content": "Let me count.", "reasoning_content": "Use the tool.",
                        "tool_calls": [{"type": "function", "function": {"name": "count_shapes", "arguments": {"colour": "red"}}}]},
                       {"role": "tool", "content": "3"}],
    "think_in_content": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "<think>greet</think>Hello!"},
                         {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "<think>\nwave\n</think>\nBye!"}],
}
VARIANTS = {
    "default": {"add_generation_prompt": True},
    "no_generation_prompt": {"add_generation_prompt": False},
    "thinking_on": {"add_generation_prompt": True, "enable_thinking": True},
    "thinking_off": {"add_generation_prompt": True, "enable_thinking": False},
}


def render(proc, chat, kwargs) -> str:
    return proc.apply_chat_template(json.loads(json.dumps(chat)), **kwargs)


def cases() -> list[dict]:
    fixture_template = (OUT / "chat_template.jinja").read_text()
    procs = {"fixture": (AutoProcessor.from_pretrained(model_dir("tiny_b")), fixture_template),
             "builtin": (AutoProcessor.from_pretrained(BUILTIN), None)}
    out = []
    for template_name, (proc, template) in procs.items():
        for chat_name, chat in CHATS.items():
            for var_name, opts in VARIANTS.items():
                for with_tools in [True, False]:
                    kwargs = {**opts, **({"tools": TOOLS} if with_tools else {})}
                    expected = render(proc, chat, {**kwargs, **({"chat_template": template} if template else {})})
                    name = f"{chat_name}/{var_name}" + ("" if with_tools else "/no_tools")
                    out.append({"template": template_name, "name": name, "messages": chat, "options": kwargs,
                                "expected": expected})
    return out


def main():
    write_json(OUT / "templates.json", {"tiny_model": "../models/tiny_b", "builtin_model": "../../../assets/model",
                                        "cases": cases()})
